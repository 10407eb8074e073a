"""The originator of a message (RFC 5322 §3.6.2): every mailbox of its From and Sender fields,
read the way a receiving mail client reads them.

A tenant may only send as its own domains, so the check must see what the reader will see:
folded fields unfolded (§2.2.3), groups opened (§3.4), comments and encoded words (RFC 2047)
understood. Two parsers read each field — the stdlib's RFC 5322 parser and the lenient legacy
one many clients resemble — and a field they read differently, or that either finds invalid, is
refused as ambiguous rather than guessed at. Display names and comments that show an address are
checked like the mailbox itself: a reader sees `"ceo@bank.test" <news@a.test>` as the bank.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email import errors, policy
from email.utils import getaddresses

from mta.dns import to_ascii

# No legitimate From or Sender needs more; the stdlib parser is not linear on crafted input,
# so its input is bounded before it runs (issue 12, High 2).
MAX_FIELD_LENGTH = 2048
MAX_MAILBOXES = 20

# Defects after which a client's reading of the field cannot be predicted.
_FATAL_DEFECTS = (
    errors.InvalidHeaderDefect,
    errors.HeaderMissingRequiredValue,
    errors.UndecodableBytesDefect,
    errors.NonASCIILocalPartDefect,
)
# Characters around an address inside a display name or comment.
_WORD_SEPARATORS = str.maketrans({c: " " for c in "<>()[]\",;:'\t"})


class AmbiguousOriginator(ValueError):
    """The From or Sender field cannot be read as one unambiguous list of mailboxes."""


@dataclass(frozen=True, slots=True)
class Originator:
    """The mailboxes of From (in order) and of Sender (when present), as lower-case domains are
    compared: `domains` holds every domain a reader could take for the author's."""

    from_addresses: tuple[str, ...]
    sender_address: str | None
    domains: frozenset[str]

    @property
    def author(self) -> str:
        """The first From mailbox: the one Message-ID and the DKIM domain are taken from."""
        return self.from_addresses[0]


def read_originator(from_values: list[str], sender_values: list[str]) -> Originator:
    """Read the unfolded values of every From and Sender field. Raises AmbiguousOriginator."""
    if len(from_values) != 1:
        raise AmbiguousOriginator("exactly one From field is required (RFC 5322 §3.6)")
    if len(sender_values) > 1:
        raise AmbiguousOriginator("at most one Sender field is allowed (RFC 5322 §3.6)")
    domains: set[str] = set()
    authors = _mailboxes("From", from_values[0], domains)
    sender = None
    if sender_values:
        senders = _mailboxes("Sender", sender_values[0], domains)
        if len(senders) != 1:
            raise AmbiguousOriginator("the Sender field must hold one mailbox (RFC 5322 §3.6.2)")
        sender = senders[0]
    return Originator(tuple(authors), sender, frozenset(domains))


def _mailboxes(name: str, value: str, domains: set[str]) -> list[str]:
    if len(value) > MAX_FIELD_LENGTH:
        raise AmbiguousOriginator(f"the {name} field is longer than {MAX_FIELD_LENGTH} characters")
    header = policy.default.header_factory(name, value)
    if any(isinstance(d, _FATAL_DEFECTS) for d in header.defects):
        raise AmbiguousOriginator(f"the {name} field cannot be parsed")
    parsed = [(a.display_name, a.username, a.domain) for a in header.addresses]
    legacy = getaddresses([value])
    if not parsed or len(parsed) > MAX_MAILBOXES:
        raise AmbiguousOriginator(f"the {name} field must hold 1 to {MAX_MAILBOXES} mailboxes")
    strict = [f"{local}@{domain}".lower() for _, local, domain in parsed]
    if strict != [address.lower() for _, address in legacy]:
        raise AmbiguousOriginator(f"the {name} field reads differently to different clients")
    addresses = []
    for (display_name, local, domain), (legacy_name, _) in zip(parsed, legacy, strict=True):
        if not local or not domain or domain.startswith("["):
            raise AmbiguousOriginator(f"the {name} field needs mailboxes on a domain name")
        domains.add(_domain(domain, name))
        domains.update(_domains_shown(display_name, legacy_name, name))
        addresses.append(f"{local}@{domain}")
    return addresses


def _domains_shown(display_name: str, legacy_name: str, name: str) -> Iterable[str]:
    """Domains of anything that looks like an address in a display name or a comment: what the
    reader is shown. Split on separators, no pattern: linear in the (bounded) field."""
    for text in (display_name, legacy_name):
        for word in text.translate(_WORD_SEPARATORS).split():
            local, at, domain = word.rpartition("@")
            if at and local and domain:
                yield _domain(domain.rstrip("."), name)


def _domain(domain: str, name: str) -> str:
    try:
        return to_ascii(domain)
    except (UnicodeError, ValueError):
        raise AmbiguousOriginator(f"the {name} field has an invalid domain") from None
