"""RFC 3464 delivery status notifications: the per-recipient fields and the original headers.

A DSN is `multipart/report; report-type=delivery-status` with a `message/delivery-status`
part: one group of per-message fields, then one group per recipient (Final-Recipient, Action,
Status, Diagnostic-Code, Remote-MTA...), separated by blank lines. Real ones are often wrapped
in multipart/mixed, lack the report-type, label the status part text/plain, or fold and
encode fields oddly; this module reads what is there and never raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from bounce.classify import STATUS_RE

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
HEADER_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers"})
ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global"})

_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_ADDRESS_RE = re.compile(r"[^\s<>()\[\]\"',;:]+@[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]")
_SPACE_RE = re.compile(r"\s+")
# A text part that is really a delivery-status part mislabelled (some Exchange, Lotus).
_LOOKS_LIKE_DSN_RE = re.compile(r"^(?:final|original)-recipient\s*:", re.I | re.M)


_EXTRA_DIAGNOSTIC_FIELDS = ("x400-supplementary-info", "x-supplementary-info", "x-diagnostic")


@dataclass(slots=True)
class DsnRecipient:
    """The raw per-recipient fields of one delivery-status group, not yet classified."""

    recipient: str
    original_recipient: str = ""
    action: str = ""
    status: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""  # smtp, x-postfix, x-unix...
    remote_mta: str = ""


def first_address(text: str) -> str:
    """The first mail address in `text` (angle brackets, comments and type prefixes ignored)."""
    m = _ADDRESS_RE.search(text)
    return m.group(0).strip(".").lower() if m else ""


def fold(value: str) -> str:
    return _SPACE_RE.sub(" ", value).strip()


def field_groups(text: str) -> list[dict[str, str]]:
    """Blank-line separated groups of `Name: value` fields (names lower-cased, continuation
    lines unfolded). Lines that are not fields are ignored."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        m = _FIELD_RE.match(line)
        if m is None:
            last = ""
            continue
        last = m[1].lower()
        if last in current:  # a repeated field in one group starts a new group (no blank line)
            groups.append(current)
            current = {}
        current[last] = m[2].strip()
    if current:
        groups.append(current)
    return groups


def part_text(part: Message) -> str:
    """A part's decoded text, whatever its declared charset or transfer encoding."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into groups
        return "\n\n".join(_group_text(m) for m in payload if isinstance(m, Message))
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken base64 / quoted-printable: take it as it is
        data = None
    if data is None:
        return payload if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # unknown charset name
        return data.decode("utf-8", "replace")


def _group_text(group: Message) -> str:
    lines = [f"{k}: {fold(str(v))}" for k, v in group.items()]
    body = group.get_payload()
    if isinstance(body, str) and body.strip():  # fields after a stray blank line
        lines.append("")
        lines.append(body)
    return "\n".join(lines)


def _strip_type(value: str) -> tuple[str, str]:
    """'smtp; 550 ...' -> ('smtp', '550 ...'); values without an RFC 3464 type pass through."""
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and " " not in kind.strip() and len(kind) < 20:
        return kind.strip().lower(), rest.strip()
    return "", value.strip()


def is_attachment(part: Message) -> bool:
    """A named file rather than the message's own text (most parts have no disposition)."""
    return part.get("content-disposition") is not None and part.get_filename() is not None


def is_dsn_part(part: Message, ctype: str | None = None) -> bool:
    ctype = ctype or part.get_content_type()
    if ctype in DSN_TYPES:
        return True
    if ctype == "text/plain" and not is_attachment(part):
        payload = part.get_payload()
        return isinstance(payload, str) and _LOOKS_LIKE_DSN_RE.search(payload[:4000]) is not None
    return False


def parse_delivery_status(text: str) -> tuple[dict[str, str], list[DsnRecipient]]:
    """Per-message fields and per-recipient groups of a delivery-status body."""
    per_message: dict[str, str] = {}
    recipients: list[DsnRecipient] = []
    for group in field_groups(text):
        final = group.get("final-recipient", "")
        original = group.get("original-recipient", "")
        if not final and not original:
            per_message.update(group)
            continue
        # Final-Recipient names the failed mailbox (after alias expansion); the address the
        # sender wrote is Original-Recipient, kept beside it for finding the recipient row.
        address = first_address(_strip_type(final)[1])
        alternative = first_address(_strip_type(original)[1])
        if alternative and (not address or "." not in address.partition("@")[2]):
            address = alternative  # "userx@sims-ms-daemon": an internal name, not an address
        diag_type, diagnostic = _strip_type(group.get("diagnostic-code", ""))
        for extra in _EXTRA_DIAGNOSTIC_FIELDS:  # X.400 gateways put the SMTP reply here
            if group.get(extra):
                diagnostic = f"{diagnostic} {group[extra]}".strip()
        status_m = STATUS_RE.search(group.get("status", ""))
        recipients.append(
            DsnRecipient(
                recipient=address,
                original_recipient=first_address(original),
                action=(group.get("action", "").split() or [""])[0].lower().strip(";,."),
                status=f"{status_m[1]}.{status_m[2]}.{status_m[3]}" if status_m else "",
                diagnostic=fold(diagnostic),
                diagnostic_type=diag_type,
                remote_mta=_strip_type(group.get("remote-mta", ""))[1].strip("[] "),
            )
        )
    unique = {r.recipient: r for r in reversed(recipients)}  # a recipient reported twice
    return per_message, [unique[a] for a in dict.fromkeys(r.recipient for r in recipients)]
