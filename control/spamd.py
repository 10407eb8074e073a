"""A client for SpamAssassin's spamd, speaking its SPAMC/SPAMD protocol over TCP.

The protocol (SpamAssassin `spamd/PROTOCOL`): one request per connection.

    REPORT SPAMC/1.5\\r\\n              request line: METHOD SPAMC/version
    Content-length: 1234\\r\\n          bytes of the message that follows
    User: sendmill\\r\\n                optional: whose preferences spamd applies
    \\r\\n
    <the message, 1234 bytes>

    SPAMD/1.1 0 EX_OK\\r\\n             response line: SPAMD/version code message (0 = success)
    Content-length: 567\\r\\n           (SYMBOLS and REPORT only)
    Spam: False ; 2.6 / 5.0\\r\\n       verdict ; score / threshold
    \\r\\n
    <body: nothing (CHECK), "SYM1,SYM2" (SYMBOLS) or the report text (REPORT)>

`CHECK` gives the verdict, `SYMBOLS` the names of the rules that hit, `REPORT` the report whose
table ("pts rule name description") this client parses into per-rule scores and explanations.
spamd closes the connection after its response. A non-zero code (e.g. `76 EX_PROTOCOL`) is an
error, raised as `SpamdError` like a refused connection, a time-out or an unreadable reply.

    client = SpamdClient("127.0.0.1", 783, timeout=10)
    result = await client.report(message_bytes)   # SpamdResult(score=2.6, threshold=5.0, rules=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PORT",
    "MAX_MESSAGE_BYTES",
    "SpamdClient",
    "SpamdError",
    "SpamdResult",
    "SpamdRule",
    "parse_report",
]

DEFAULT_PORT = 783
PROTOCOL_VERSION = "1.5"
#: spamc's default size limit: spamd is not asked to scan bigger messages (spamc -s).
MAX_MESSAGE_BYTES = 500 * 1024
# Bounds on what a misbehaving server can make us read.
_MAX_HEADER_LINE = 8192
_MAX_BODY = 1024 * 1024

_STATUS_LINE = re.compile(rb"SPAMD/(\d+\.\d+) +(\d+) +(.*)")
_SPAM_HEADER = re.compile(
    r"(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE
)
_REPORT_ROW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s+(.*?)\s*$")


class SpamdError(Exception):
    """spamd could not be reached, timed out, refused the request or answered nonsense."""


@dataclass(frozen=True, slots=True)
class SpamdRule:
    """One SpamAssassin rule that hit, from a REPORT table."""

    name: str
    score: float
    description: str


@dataclass(frozen=True, slots=True)
class SpamdResult:
    is_spam: bool
    score: float
    threshold: float
    symbols: tuple[str, ...] = ()  # SYMBOLS (and REPORT: the rule names of the table)
    rules: tuple[SpamdRule, ...] = ()  # REPORT only
    report: str = ""  # REPORT only: the full text


class SpamdClient:
    """Talks to one spamd server; each call opens a connection, as spamc does."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        timeout: float = 10.0,
        user: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.user = user

    async def ping(self) -> bool:
        """True when spamd answers PING with PONG."""
        status, _, _ = await self._request("PING", None)
        return status.endswith(b"PONG")

    async def check(self, message: bytes) -> SpamdResult:
        """The verdict only (CHECK)."""
        _, headers, _ = await self._request("CHECK", message)
        return _verdict(headers)

    async def symbols(self, message: bytes) -> SpamdResult:
        """The verdict and the names of the rules that hit (SYMBOLS)."""
        _, headers, body = await self._request("SYMBOLS", message)
        result = _verdict(headers)
        names = tuple(s.strip() for s in body.decode("utf-8", "replace").split(",") if s.strip())
        return SpamdResult(result.is_spam, result.score, result.threshold, symbols=names)

    async def report(self, message: bytes) -> SpamdResult:
        """The verdict and the report, parsed into per-rule scores and explanations (REPORT)."""
        _, headers, body = await self._request("REPORT", message)
        result = _verdict(headers)
        text = body.decode("utf-8", "replace")
        rules = parse_report(text)
        return SpamdResult(
            result.is_spam,
            result.score,
            result.threshold,
            symbols=tuple(r.name for r in rules),
            rules=rules,
            report=text,
        )

    async def _request(
        self, method: str, message: bytes | None
    ) -> tuple[bytes, dict[str, str], bytes]:
        if message is not None and len(message) > MAX_MESSAGE_BYTES:
            raise SpamdError(
                f"message of {len(message)} bytes is over spamd's {MAX_MESSAGE_BYTES} byte limit"
            )
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(self._encode(method, message))
                    await writer.drain()
                    # PING's reply is the status line alone ("SPAMD/1.5 0 PONG").
                    return await _read_response(reader, status_only=method == "PING")
                finally:
                    writer.close()
                    # The server may have closed first: nothing left to release then.
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError as exc:
            raise SpamdError(
                f"spamd at {self.host}:{self.port} did not answer within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise SpamdError(f"spamd at {self.host}:{self.port}: {exc}") from exc

    def _encode(self, method: str, message: bytes | None) -> bytes:
        lines = [f"{method} SPAMC/{PROTOCOL_VERSION}"]
        if message is not None:
            lines.append(f"Content-length: {len(message)}")
        if self.user:
            lines.append(f"User: {self.user}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        return head + (message or b"")


async def _read_response(
    reader: asyncio.StreamReader, *, status_only: bool = False
) -> tuple[bytes, dict[str, str], bytes]:
    status_line = await _read_line(reader)
    match = _STATUS_LINE.fullmatch(status_line)
    if not match:
        raise SpamdError(f"spamd answered an unknown status line: {status_line[:100]!r}")
    code, text = int(match.group(2)), match.group(3)
    if code != 0:
        raise SpamdError(f"spamd refused the request: {code} {text.decode('ascii', 'replace')}")
    if status_only:
        return match.group(0), {}, b""
    headers: dict[str, str] = {}
    while True:
        line = await _read_line(reader)
        if not line:
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise SpamdError(f"spamd sent a malformed header line: {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length")
    if length_text is None:
        body = await reader.read(_MAX_BODY)
    else:
        if not length_text.isdigit() or int(length_text) > _MAX_BODY:
            raise SpamdError(f"spamd sent an unusable Content-length: {length_text[:30]!r}")
        try:
            body = await reader.readexactly(int(length_text))
        except asyncio.IncompleteReadError as exc:
            raise SpamdError("spamd closed the connection before the end of its reply") from exc
    return match.group(0), headers, body


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise SpamdError("spamd closed the connection in the middle of its reply") from exc
    except asyncio.LimitOverrunError as exc:
        raise SpamdError("spamd sent an over-long header line") from exc
    if len(line) > _MAX_HEADER_LINE:
        raise SpamdError("spamd sent an over-long header line")
    return line.rstrip(b"\r\n")


def _verdict(headers: dict[str, str]) -> SpamdResult:
    spam = headers.get("spam")
    match = _SPAM_HEADER.fullmatch(spam.strip()) if spam else None
    if not match:
        raise SpamdError(f"spamd's reply has no usable Spam header: {spam!r}")
    return SpamdResult(
        is_spam=match.group(1).lower() in ("true", "yes"),
        score=float(match.group(2)),
        threshold=float(match.group(3)),
    )


def parse_report(text: str) -> tuple[SpamdRule, ...]:
    """The rules of a SpamAssassin report table (after the `---- ----` ruler line).

    A description that wraps continues on the next lines, indented, without a score.
    """
    rules: list[SpamdRule] = []
    in_table = False
    for line in text.splitlines():
        if not in_table:
            in_table = line.startswith("----")
            continue
        row = _REPORT_ROW.match(line)
        if row:
            rules.append(SpamdRule(row.group(2), float(row.group(1)), row.group(3)))
        elif line.strip() and line.startswith(" ") and rules:
            last = rules[-1]
            rules[-1] = SpamdRule(
                last.name, last.score, f"{last.description} {line.strip()}".strip()
            )
        elif not line.strip():
            continue
        else:
            break
    return tuple(rules)
