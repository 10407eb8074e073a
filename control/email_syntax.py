"""Email address syntax for contact lists: validate and normalise one address, fast.

What a list accepts (RFC 5321 §4.1.2 and §4.5.3.1, RFC 5890 for internationalised domains):
- `local@domain`, the local part a dot-atom of ASCII characters (no quoted local parts, no
  comments, no address literals such as `user@[192.0.2.1]`), at most 64 octets;
- a domain of at least two labels, each 1-63 letters, digits or hyphens (not at either end), at
  most 253 octets in its ASCII form, the last label not all digits;
- an internationalised domain (`bücher.example`) is converted to its ASCII form (IDNA 2008 with
  UTS #46 mapping, `xn--bcher-kva.example`), which is what DNS and SMTP use;
- a non-ASCII local part is refused: delivering it needs SMTPUTF8 end to end, which many
  receivers lack.

The normalised address is lower-cased as a whole: the unsubscribe and suppression lists key on
the lower-cased address, and no mailbox provider in use distinguishes case in local parts.
"""

from __future__ import annotations

import re

import idna

__all__ = ["AddressError", "normalize_address"]

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The whole grammar for the common (ASCII) case in one expression: one C-level match per row.
_ASCII_ADDRESS = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+(?![0-9]+$){_LABEL}")
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LABEL_RE = re.compile(_LABEL)
_MAX_LOCAL = 64
_MAX_DOMAIN = 253
_MAX_ADDRESS = 254  # RFC 5321 path limit (256) less the angle brackets


class AddressError(ValueError):
    """An address that a list cannot hold; the message says why, for the import report."""


def normalize_address(text: str) -> str:
    """The address in `text` (surrounding spaces ignored), lower-cased with an ASCII domain.

    Raises `AddressError` with the reason when it is not a deliverable address.
    """
    address = text.strip()
    if (
        len(address) <= _MAX_ADDRESS
        and _ASCII_ADDRESS.fullmatch(address)
        and address.index("@") <= _MAX_LOCAL
    ):
        return address.lower()
    return _slow_path(address)


def _slow_path(address: str) -> str:
    """Find the precise reason an address failed the fast match, or accept an IDN domain."""
    if not address:
        raise AddressError("the address is empty")
    if "@" not in address:
        raise AddressError("the address has no @")
    local, _, domain = address.rpartition("@")
    if not local:
        raise AddressError("nothing before the @")
    if not domain:
        raise AddressError("nothing after the @")
    if "@" in local:
        raise AddressError("the address has more than one @")
    if local.startswith('"'):
        raise AddressError("quoted local parts are not accepted")
    if any(c.isspace() for c in address):
        raise AddressError("the address contains a space")
    if not local.isascii():
        raise AddressError("non-ASCII characters before the @ (needs SMTPUTF8, not supported)")
    if len(local) > _MAX_LOCAL:
        raise AddressError(f"the part before the @ is longer than {_MAX_LOCAL} characters")
    if not _LOCAL.fullmatch(local):
        if local.startswith(".") or local.endswith(".") or ".." in local:
            raise AddressError("a dot at the start or end of the local part, or two in a row")
        bad = next(c for c in local if not re.fullmatch(_ATEXT + "|\\.", c))
        raise AddressError(f"the character {bad!r} is not allowed before the @")
    if domain.startswith("["):
        raise AddressError("address literals such as user@[192.0.2.1] are not accepted")
    ascii_domain = _ascii_domain(domain)
    if len(local) + 1 + len(ascii_domain) > _MAX_ADDRESS:
        raise AddressError(f"the address is longer than {_MAX_ADDRESS} characters")
    return f"{local}@{ascii_domain}".lower()


def _ascii_domain(domain: str) -> str:
    if domain.endswith("."):
        raise AddressError("the domain ends with a dot")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise AddressError(f"the domain is not a valid internationalised name ({exc})") from exc
    labels = domain.split(".")
    if len(labels) < 2:
        raise AddressError("the domain has no dot (a full domain such as example.com is needed)")
    if len(domain) > _MAX_DOMAIN:
        raise AddressError(f"the domain is longer than {_MAX_DOMAIN} characters")
    for label in labels:
        if not label:
            raise AddressError("the domain has an empty label (two dots in a row)")
        if len(label) > 63:
            raise AddressError("a domain label is longer than 63 characters")
        if label.startswith("-") or label.endswith("-"):
            raise AddressError(f"the domain label {label!r} starts or ends with a hyphen")
        if not _LABEL_RE.fullmatch(label):
            raise AddressError(f"the domain label {label!r} has a character that is not allowed")
    if labels[-1].isdigit():
        raise AddressError("the domain ends in a number: an IP address is not a mail domain")
    return domain.lower()
