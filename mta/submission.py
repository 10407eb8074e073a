"""Submission policy shared by SMTP and HTTP intake: who may send what, and message checks.

Both front ends turn a client's request into a `Submission` through `SubmissionPolicy`, which
raises a specific `SubmissionError`; the SMTP server maps it to its reply (`smtp_reply`) and the
HTTP API to its error body (`http_status`, `error_code`) — each in one place.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from dataclasses import dataclass

import asyncpg

from mta import long_lines, replies, sending_domains, tenants
from mta.credentials import Credential
from mta.dns import to_ascii
from mta.originator import AmbiguousOriginator, Originator, read_originator
from mta.queue import Submission

OWNERSHIP_TTL = 5.0  # seconds a "may send From this domain" answer is reused
MAX_LINE = 998  # RFC 5322 §2.1.1: at most 998 characters per line, excluding CRLF
_ADDR = re.compile(r"^[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\"]+$")


class SubmissionError(Exception):
    """A submission refused for a reason the client must hear."""

    smtp_reply = "554 5.0.0 Rejected"
    http_status = 422
    error_code = "rejected"

    def __init__(self, message: str | None = None, *, smtp_reply: str | None = None) -> None:
        if smtp_reply:
            self.smtp_reply = smtp_reply
        super().__init__(message or self.smtp_reply[10:])


class RelayDenied(SubmissionError):
    smtp_reply = replies.S550_NO_RELAY
    http_status = 403
    error_code = "relay_denied"


class FromDomainNotOwned(SubmissionError):
    http_status = 403
    error_code = "sender_domain_not_allowed"

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"sender domain {domain} is not a sending domain of this account",
            smtp_reply=replies.S550_FROM_NOT_OWNED.format(domain=domain),
        )


class AmbiguousFrom(SubmissionError):
    http_status = 403
    error_code = "sender_ambiguous"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, smtp_reply=replies.S550_FROM_AMBIGUOUS.format(reason=reason))


class MessageTooLarge(SubmissionError):
    http_status = 413
    error_code = "message_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"message exceeds the limit of {limit} bytes",
            smtp_reply=replies.S552_TOO_BIG.format(limit=limit),
        )


class TooManyRecipients(SubmissionError):
    smtp_reply = replies.S452_TOO_MANY_RECIPIENTS
    http_status = 422
    error_code = "too_many_recipients"


class BadAddress(SubmissionError):
    smtp_reply = replies.S501_BAD_ADDRESS
    http_status = 422
    error_code = "invalid_address"


class BadMessage(SubmissionError):
    http_status = 422
    error_code = "invalid_message"

    def __init__(self, reason: str) -> None:
        super().__init__(reason, smtp_reply=replies.S554_BAD_HEADERS.format(reason=reason))


def valid_address(address: str) -> bool:
    return bool(_ADDR.match(address)) and len(address) <= 254


def address_domain(address: str) -> str:
    """The domain of an address as sending domains are stored: lower-case, IDNA (xn--)."""
    return to_ascii(address.rpartition("@")[2])


@dataclass(frozen=True, slots=True)
class ParsedHeaders:
    originator: Originator
    message_id: str | None
    has_date: bool

    @property
    def from_address(self) -> str:
        return self.originator.author


def parse_headers(body: bytes) -> ParsedHeaders:
    """Check the header section and find From, Sender, Message-ID and Date. Raises BadMessage,
    or AmbiguousFrom when From or Sender cannot be read one way only."""
    end = body.find(b"\r\n\r\n")
    head = body if end < 0 else body[: end + 2]
    fields: dict[bytes, list[str]] = {b"from": [], b"sender": []}
    current: list[str] | None = None  # the value list of the field being unfolded
    message_id = None
    has_date = False
    for line in head.split(b"\r\n"):
        if len(line) > MAX_LINE:
            raise BadMessage(f"a header line is longer than {MAX_LINE} characters")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # RFC 5322 §2.2.3: a folded line belongs to the field above it; readers unfold.
            if current is not None:
                current[-1] += line.decode("utf-8", "surrogateescape")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or b" " in name.strip(b" ") or name != name.rstrip():
            raise BadMessage("malformed header line (expected 'Name: value')")
        lname = name.strip().lower()
        current = fields.get(lname)
        if current is not None:
            current.append(value.decode("utf-8", "surrogateescape"))
        elif lname == b"message-id":
            message_id = value.decode("ascii", "replace").strip()
        elif lname == b"date":
            has_date = True
    if not fields[b"from"]:
        raise BadMessage("exactly one From header is required (RFC 5322 §3.6)")
    try:
        originator = read_originator(fields[b"from"], fields[b"sender"])
    except AmbiguousOriginator as exc:
        raise AmbiguousFrom(str(exc)) from None
    if not all(valid_address(a) for a in originator.from_addresses):
        raise BadMessage("the From header has no valid address")
    return ParsedHeaders(originator, message_id, has_date)


def normalise_line_endings(body: bytes) -> bytes:
    """Bare LF or CR become CRLF (RFC 5322 §2.3); SMTP DATA already gives CRLF."""
    if b"\r\n" in body and b"\n" not in body.replace(b"\r\n", b""):
        return body
    return body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class SubmissionPolicy:
    """Decides whether a credential may submit a message, and prepares it for the queue."""

    def __init__(
        self,
        db: asyncpg.Pool,
        hostname: str,
        max_message_size: int,
        max_recipients: int,
        *,
        require_verified_dkim: bool = True,
    ) -> None:
        self._db = db
        self.require_verified_dkim = require_verified_dkim
        self.hostname = hostname
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self._domains: dict[int, tuple[float, frozenset[str]]] = {}

    async def sending_domains(self, company_id: int) -> frozenset[str]:
        """The domains the company may send From (mta/sending_domains.py), remembered for
        OWNERSHIP_TTL seconds."""
        hit = self._domains.get(company_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        domains = frozenset(
            await sending_domains.sendable_domains(
                self._db, company_id, require_verified=self.require_verified_dkim
            )
        )
        # Kept briefly: a domain added or verified at run time sends within seconds.
        self._domains[company_id] = (time.monotonic() + OWNERSHIP_TTL, domains)
        return domains

    async def owns(self, company_id: int, domain: str) -> bool:
        return domain.lower() in await self.sending_domains(company_id)

    async def check_sender(self, credential: Credential, mail_from: str) -> None:
        """MAIL FROM: a non-null envelope sender must be on one of the account's domains."""
        if mail_from and not valid_address(mail_from):
            raise BadAddress()
        if mail_from and not await self.owns(credential.company_id, address_domain(mail_from)):
            raise FromDomainNotOwned(address_domain(mail_from))

    async def trusted_network_sender(self, mail_from: str) -> Credential:
        """A client on a trusted network sends for the company owning its envelope sender's
        domain; there must be one (no null sender, no foreign domain)."""
        if not mail_from or not valid_address(mail_from):
            raise RelayDenied(
                smtp_reply=replies.S550_TRUSTED_NEEDS_SENDER,
            )
        domain = address_domain(mail_from)
        company_id = await tenants.company_of_domain(self._db, domain)
        if company_id is None:
            raise FromDomainNotOwned(domain)
        return Credential(id=None, company_id=company_id, kind="network")

    def check_recipient(self, recipient: str, count_so_far: int) -> None:
        if not valid_address(recipient):
            raise BadAddress()
        if count_so_far >= self.max_recipients:
            raise TooManyRecipients()

    async def prepare(
        self,
        credential: Credential,
        mail_from: str,
        recipients: list[str],
        body: bytes,
        *,
        priority: int = 0,
    ) -> Submission:
        """Check a complete message and return it ready to queue (Date, Message-ID added)."""
        if len(body) > self.max_message_size:
            raise MessageTooLarge(self.max_message_size)
        if not recipients:
            raise BadAddress("no recipients")
        if len(recipients) > self.max_recipients:
            raise TooManyRecipients()
        for recipient in recipients:
            if not valid_address(recipient):
                raise BadAddress(f"invalid recipient address {recipient!r}")
        if b"\0" in body:  # RFC 5321 §4.1.1.4 / RFC 5322 §2.3: NUL has no place in mail
            raise BadMessage("the message contains NUL characters; encode binary content")
        body = normalise_line_endings(body)
        headers = parse_headers(body)
        if long_lines.longest_line(body) > MAX_LINE:
            # Re-encoded rather than refused (issue 14); parsing is CPU work: off the loop.
            body = await asyncio.to_thread(long_lines.reencode, body)
        from_domain = address_domain(headers.from_address)
        owned = await self.sending_domains(credential.company_id)
        # Every domain a reader could take for the author's: each From mailbox, Sender, and
        # addresses shown in their display names (mta/originator.py).
        foreign = headers.originator.domains - owned
        if foreign:
            raise FromDomainNotOwned(min(foreign))
        await self.check_sender(credential, mail_from)
        added = b""
        message_id = headers.message_id
        if message_id is None:
            message_id = email.utils.make_msgid(domain=from_domain)
            added += b"Message-ID: " + message_id.encode() + b"\r\n"
        if not headers.has_date:
            added += b"Date: " + email.utils.formatdate(localtime=False).encode() + b"\r\n"
        body = added + body
        smtputf8 = not (mail_from + "".join(recipients)).isascii()
        return Submission(
            company_id=credential.company_id,
            credential_id=credential.id,
            mail_from=mail_from or headers.from_address,
            from_domain=from_domain,
            recipients=recipients,
            body=body,
            message_id=message_id,
            smtputf8=smtputf8,
            eight_bit=not body.isascii(),
            priority=priority,
        )
