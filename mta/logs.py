"""Structured logging: one JSON object per line (production) or readable text (development)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# uvicorn adds `color_message`, the message with ANSI colour codes: never in our logs.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


# Credentials as they appear in log lines: query parameters (`/api/ws?access_token=...`, which
# uvicorn logs for every WebSocket), Authorization values, and our key formats. Each pattern is
# a literal then one character class: linear on any line.
_SECRETS = re.compile(
    r"(?i)((?:access_token|refresh_token|token|api_key|key|password|secret)=)[^&\s\"']+"
    r"|(\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+"
    r"|\b(smr?_)[A-Za-z0-9_-]{8,}"
)


def redact(text: str) -> str:
    """`text` with every credential replaced by `[redacted]` (issue 12.10)."""
    return _SECRETS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "[redacted]", text)


class Redactor(logging.Filter):
    """Rewrites each record's message without credentials, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        # The date too, in UTC like the JSON lines: a log read the next day must say when.
        text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        text.converter = time.gmtime
        text.default_time_format = "%Y-%m-%dT%H:%M:%S"
        text.default_msec_format = "%s.%03dZ"
        handler.setFormatter(text)
    handler.addFilter(Redactor())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter: aiosmtpd logs every command at INFO, and warns on every AUTH about
    # its own deprecated Session.login_data (set by aiosmtpd itself, not by us).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # uvicorn says "Started server process" once per server, and names only some of the
    # addresses: the daemon logs each listener itself, once.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
