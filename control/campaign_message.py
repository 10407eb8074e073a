"""One recipient's campaign message as RFC 5322 bytes, from its rendered parts.

Written by hand rather than with the `email` package: it runs once per recipient in the
delivery processes, within a ~1 ms budget beside the DKIM signature (issue 10 bench). The shape
is fixed and simple: headers, then multipart/alternative (text, HTML) or a single HTML part,
bodies quoted-printable (binascii, C), header text RFC 2047 encoded when not ASCII — a 7-bit
message any MX accepts. Header values come from rendered data, so control characters are
replaced before they reach a header (no injection whatever a contact's name holds).
"""

from __future__ import annotations

import binascii
import email.utils
import re
import secrets
from dataclasses import dataclass
from email.header import Header

from control.rendering import Rendered

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who the message is from and to, and the headers the tracker decided."""

    from_address: str
    to_address: str
    reply_to: str | None = None
    message_id: str = ""
    list_unsubscribe: str | None = None  # `<https://…>, <mailto:…>`; None: not marketing
    prefix_subject: str = ""  # "[Test] " for test sends


def _clean(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


def _encoded(value: str) -> str:
    value = _clean(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _address(name: str, address: str) -> str:
    return email.utils.formataddr((_clean(name), _clean(address)), charset="utf-8")


def _qp(text: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(body, istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    return (
        f"Content-Type: text/{subtype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + _qp(text)


def message_bytes(rendered: Rendered, envelope: Envelope) -> bytes:
    """The unsigned message (DKIM signs it next, in the delivery engine)."""
    domain = envelope.from_address.rpartition("@")[2]
    message_id = envelope.message_id or f"<{secrets.token_hex(12)}@{domain}>"
    headers = [
        f"From: {_address(rendered.from_name, envelope.from_address)}",
        f"To: {_clean(envelope.to_address)}",
        f"Subject: {_encoded(envelope.prefix_subject + rendered.subject)}",
        f"Date: {email.utils.formatdate(localtime=False)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if envelope.reply_to:
        headers.append(f"Reply-To: {_clean(envelope.reply_to)}")
    if envelope.list_unsubscribe:
        folded = _clean(envelope.list_unsubscribe).replace(", <", ",\r\n <")
        headers.append(f"List-Unsubscribe: {folded}")
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")  # RFC 8058 §3.1
    if rendered.text is None:
        head = "\r\n".join(headers).encode() + b"\r\n"
        return head + _part("html", rendered.html)
    boundary = f"=_sm_{secrets.token_hex(12)}"
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    open_ = f"\r\n--{boundary}\r\n".encode()
    return b"".join(
        (
            "\r\n".join(headers).encode(),
            b"\r\n\r\nThis is a multi-part message in MIME format.\r\n",
            open_,
            _part("plain", rendered.text),
            open_,
            _part("html", rendered.html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
