"""Compose an RFC 5322 message from the HTTP API's JSON submission.

`MessageSpec.from_json` validates the client's object and names the offending field in every
error (`ComposeError`); `compose` turns a valid spec into CRLF bytes with the stdlib `email`
package. Messages are written for a 7-bit path: non-ASCII header text becomes RFC 2047 encoded
words, bodies quoted-printable or base64, domains IDNA A-labels, so any receiving MX accepts them
without 8BITMIME or SMTPUTF8. Bcc recipients are envelope-only and never appear in a header.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import mimetypes
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.errors import HeaderParseError
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Any

from mta.header_text import has_lone_surrogate, header_text_problem
from mta.submission import valid_address

# 7bit: every header and body part is plain ASCII on the wire (RFC 2047, RFC 2045).
POLICY = email_policy.SMTP.clone(cte_type="7bit")

# RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
# RFC 2045 §5.1: type "/" subtype, both tokens.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}$")

# Headers the composer writes itself, or that only a later hop may add: a client setting them
# could forge the envelope view, break the MIME structure or smuggle recipients.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "return-path",
        "received",
        "dkim-signature",
    }
)
_RESERVED_PREFIXES = ("resent-", "content-")

_SPEC_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "attachments"}
)
_ADDRESS_KEYS = frozenset({"email", "name"})
_ATTACHMENT_KEYS = frozenset({"filename", "content_type", "content"})


class ComposeError(ValueError):
    """A submission field is missing or invalid; `field` is its path, e.g. `to[1].email`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class Address:
    email: str
    name: str = ""

    def header(self) -> HeaderAddress:
        return HeaderAddress(display_name=self.name, addr_spec=self.email)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A message as the JSON API describes it. `from_` is the JSON field `from`."""

    from_: Address
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients: to + cc + bcc, each address once, in order."""
        seen: set[str] = set()
        result: list[str] = []
        for address in (*self.to, *self.cc, *self.bcc):
            key = address.email.lower()
            if key not in seen:
                seen.add(key)
                result.append(address.email)
        return result

    @classmethod
    def from_json(cls, obj: Any) -> MessageSpec:
        """Validate a decoded JSON object. Raises ComposeError naming the first bad field."""
        if not isinstance(obj, dict):
            raise ComposeError("$", "the request body must be a JSON object")
        for key in obj:
            if key not in _SPEC_FIELDS:
                raise ComposeError(key, "unknown field")
        if "from" not in obj:
            raise ComposeError("from", "is required")
        spec = cls(
            from_=_address(obj["from"], "from"),
            to=_address_list(obj.get("to"), "to"),
            cc=_address_list(obj.get("cc"), "cc"),
            bcc=_address_list(obj.get("bcc"), "bcc"),
            reply_to=_address_list(obj.get("reply_to"), "reply_to"),
            subject=_header_text(_or_empty(obj.get("subject")), "subject"),
            text=_optional_str(obj.get("text"), "text"),
            html=_optional_str(obj.get("html"), "html"),
            headers=_extra_headers(obj.get("headers"), "headers"),
            attachments=_attachments(obj.get("attachments"), "attachments"),
        )
        if not spec.recipients:
            raise ComposeError("to", "at least one recipient in to, cc or bcc is required")
        if spec.text is None and spec.html is None:
            raise ComposeError("text", "a text or html body is required")
        return spec


def compose(spec: MessageSpec, hostname: str) -> bytes:
    """The message as CRLF bytes, with Date and a Message-ID under `hostname`."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = spec.from_.header()
    if spec.to:
        msg["To"] = [a.header() for a in spec.to]
    elif not spec.cc:
        msg["To"] = "undisclosed-recipients:;"  # Bcc only: an empty group (RFC 5322 §3.6.3)
    if spec.cc:
        msg["Cc"] = [a.header() for a in spec.cc]
    if spec.reply_to:
        msg["Reply-To"] = [a.header() for a in spec.reply_to]
    if spec.subject:
        msg["Subject"] = spec.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=hostname)
    for name, value in spec.headers.items():
        msg[name] = value
    _set_body(msg, spec)
    return msg.as_bytes()


def _set_body(msg: EmailMessage, spec: MessageSpec) -> None:
    # text + html is multipart/alternative (RFC 2046 §5.1.4); attachments wrap it in
    # multipart/mixed, which add_attachment does by itself.
    if spec.text is not None:
        msg.set_content(spec.text)
        if spec.html is not None:
            msg.add_alternative(spec.html, subtype="html")
    elif spec.html is not None:
        msg.set_content(spec.html, subtype="html")
    for attachment in spec.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )


# --- validation helpers: each takes the value and its field path ------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _expect(value: Any, kind: type | tuple[type, ...], path: str, wanted: str) -> None:
    if not isinstance(value, kind):
        raise ComposeError(path, f"must be {wanted}, not {_type_name(value)}")


def _no_line_breaks(value: str, path: str) -> None:
    problem = header_text_problem(value)
    if problem:
        raise ComposeError(path, problem)


def _or_empty(value: Any) -> Any:
    return "" if value is None else value


def _optional_str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    _expect(value, str, path, "a string")
    if has_lone_surrogate(value):
        raise ComposeError(path, "must not contain lone surrogates (it is not valid Unicode)")
    return value


def _header_text(value: Any, path: str) -> str:
    _expect(value, str, path, "a string")
    _no_line_breaks(value, path)
    return value


def _address(value: Any, path: str) -> Address:
    """An address given as "Name <a@b>" / "a@b", or as {"email": ..., "name": ...}."""
    if isinstance(value, dict):
        for key in value:
            if key not in _ADDRESS_KEYS:
                raise ComposeError(f"{path}.{key}", "unknown field")
        if "email" not in value:
            raise ComposeError(f"{path}.email", "is required")
        email_value = _header_text(value["email"], f"{path}.email")
        name = _header_text(_or_empty(value.get("name")), f"{path}.name")
        return Address(_addr_spec(email_value.strip(), f"{path}.email"), name.strip())
    _expect(value, str, path, 'an address string ("Name <a@example.com>") or an object')
    _no_line_breaks(value, path)
    parsed = email.utils.getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1]:
        raise ComposeError(path, "must be exactly one address")
    name, addr = parsed[0]
    return Address(_addr_spec(addr, path), name)


def _addr_spec(addr: str, path: str) -> str:
    """Check an address and write its domain as an IDNA A-label, so headers stay ASCII."""
    local, at, domain = addr.rpartition("@")
    if not at or not local.isascii():
        # the email package cannot write an SMTPUTF8 local part (RFC 6532) into a header
        raise ComposeError(path, f"{addr!r} is not a valid ASCII address")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ComposeError(path, f"{addr!r} has an invalid domain") from None
    addr = f"{local}@{domain}"
    if not valid_address(addr):
        raise ComposeError(path, f"{addr!r} is not a valid address")
    try:
        HeaderAddress(addr_spec=addr)
    except (ValueError, IndexError, HeaderParseError):
        raise ComposeError(path, f"{addr!r} is not a valid address") from None
    return addr


def _address_list(value: Any, path: str) -> list[Address]:
    if value is None:
        return []
    if isinstance(value, str | dict):
        return [_address(value, path)]
    _expect(value, list, path, "an array of addresses")
    return [_address(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _extra_headers(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    _expect(value, dict, path, "an object of header names to strings")
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        where = f"{path}.{name}"
        if not _FIELD_NAME.match(name):
            raise ComposeError(where, "is not a valid header name (RFC 5322 §2.2)")
        lname = name.lower()
        if lname in RESERVED_HEADERS or lname.startswith(_RESERVED_PREFIXES):
            raise ComposeError(where, "may not be set as an extra header")
        headers[name] = _header_text(header_value, where)
    return headers


def _attachments(value: Any, path: str) -> list[Attachment]:
    if value is None:
        return []
    _expect(value, list, path, "an array of attachments")
    return [_attachment(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _attachment(value: Any, path: str) -> Attachment:
    _expect(value, dict, path, "an object with filename, content_type and content")
    for key in value:
        if key not in _ATTACHMENT_KEYS:
            raise ComposeError(f"{path}.{key}", "unknown field")
    for key in ("filename", "content"):
        if key not in value:
            raise ComposeError(f"{path}.{key}", "is required")
    filename = _header_text(value["filename"], f"{path}.filename")
    if not filename.strip():
        raise ComposeError(f"{path}.filename", "must not be empty")
    content_type = value.get("content_type")
    if content_type is None:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    content_type = _header_text(content_type, f"{path}.content_type").strip().lower()
    if not _CONTENT_TYPE.match(content_type):
        raise ComposeError(f"{path}.content_type", "must be a MIME type such as application/pdf")
    if content_type.startswith(("multipart/", "message/")):
        # RFC 2046 §5.2.1 forbids base64 for message/rfc822; send it as application/octet-stream
        raise ComposeError(f"{path}.content_type", f"{content_type} attachments are not supported")
    return Attachment(filename, content_type, _base64(value["content"], f"{path}.content"))


def _base64(value: Any, path: str) -> bytes:
    _expect(value, str, path, "a base64 string")
    try:
        # line-wrapped base64 (as in MIME bodies) is accepted; anything else is an error
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ComposeError(path, "is not valid base64") from None
