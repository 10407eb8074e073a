"""Body lines over 998 characters (RFC 5322 §2.1.1), re-encoded instead of refused.

Applications (HTML minifiers, JSON dumps) send such lines; large senders accept them and
re-encode the part, because a relay on the way may otherwise fold or cut the line, which breaks
the DKIM signature and sometimes the HTML. Each leaf MIME part with a long line and an identity
transfer encoding (7bit, 8bit, binary or none) becomes quoted-printable when it is text (it
stays readable) and base64 otherwise; its bytes, once decoded, are unchanged. Header lines are
left alone: a header line that long is refused by the submission checks.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import quopri
from email.generator import BytesGenerator
from email.message import Message

MAX_LINE = 998  # RFC 5322 §2.1.1, excluding CRLF
_IDENTITY = ("", "7bit", "8bit", "binary")
# compat32 keeps header fields byte for byte; no refolding (max_line_length None) either.
_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=None)


def longest_line(data: bytes) -> int:
    """The length of the longest line of `data`, CRLF or LF excluded."""
    longest = 0
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return max(longest, len(data) - start)
        length = end - start - (1 if end > start and data[end - 1] == 13 else 0)
        longest = max(longest, length)
        start = end + 1


def reencode(message: bytes) -> bytes:
    """`message` with every part holding a line over 998 characters re-encoded; the message
    itself when no part needs it. CPU work on the client's content: call it off the loop."""
    parsed = email.message_from_bytes(message, policy=_POLICY)
    changed = False
    for part in parsed.walk():
        if part.is_multipart():
            continue
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding not in _IDENTITY:
            continue  # quoted-printable and base64 lines are already short
        raw = part.get_payload(decode=True) or b""
        if longest_line(raw) <= MAX_LINE:
            continue
        _encode(part, raw)
        changed = True
    if not changed:
        return message
    if "MIME-Version" not in parsed:  # RFC 2045 §4: what gives Content-Transfer-Encoding meaning
        parsed["MIME-Version"] = "1.0"
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(parsed)
    return out.getvalue()


def _encode(part: Message, raw: bytes) -> None:
    del part["Content-Transfer-Encoding"]
    if part.get_content_maintype() == "text":
        # quotetabs keeps trailing whitespace safe; quopri breaks lines at 76 characters.
        body = quopri.encodestring(raw.replace(b"\r\n", b"\n"), quotetabs=False)
        part["Content-Transfer-Encoding"] = "quoted-printable"
    else:
        body = base64.encodebytes(raw)
        part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(body.decode("ascii"))
