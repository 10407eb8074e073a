"""RFC 5965 Abuse Reporting Format: feedback loop reports, i.e. complaints.

`multipart/report; report-type=feedback-report` with a human-readable part, a
`message/feedback-report` part (Feedback-Type, User-Agent, Version, Original-Mail-From,
Original-Rcpt-To, Arrival-Date, Source-IP...) and the original message or its headers.
Mailbox providers often redact the complainer's address; then the original message's own
headers (our VERP Return-Path, Message-ID, To) are how the processor finds the recipient row.
Microsoft's JMRP reports are not ARF but carry the address in X-HmXmrOriginalRecipient.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from bounce.dsn import field_groups, first_address, fold

FEEDBACK_TYPE = "message/feedback-report"
# Feedback types of RFC 5965 §7.3 and RFC 6591 (auth-failure): only abuse-like ones are
# complaints from a person; the others are reports about the mail stream.
PERSON_COMPLAINTS = frozenset({"abuse", "fraud", "other", "not-spam", "opt-out", ""})


@dataclass(slots=True)
class FeedbackReport:
    feedback_type: str  # abuse, fraud, virus, auth-failure, not-spam, other
    recipient: str  # the first Original-Rcpt-To, '' when redacted or absent
    recipients: tuple[str, ...] = ()  # every Original-Rcpt-To (a report may name several)
    user_agent: str = ""
    source_ip: str = ""
    arrival_date: str = ""
    original_mail_from: str = ""


def parse_feedback(text: str) -> FeedbackReport:
    """The fields of a message/feedback-report part (every field optional in practice)."""
    fields: dict[str, str] = {}
    recipients: dict[str, None] = {}  # in order, once each
    for group in field_groups(text):
        for key, value in group.items():
            fields.setdefault(key, value)
            if key == "original-rcpt-to" and first_address(value):
                recipients[first_address(value)] = None
    return FeedbackReport(
        feedback_type=fields.get("feedback-type", "abuse").strip().lower() or "abuse",
        recipient=next(iter(recipients), ""),
        recipients=tuple(recipients),
        user_agent=fold(fields.get("user-agent", "")),
        source_ip=fields.get("source-ip", "").strip(),
        arrival_date=fields.get("arrival-date", fields.get("received-date", "")).strip(),
        original_mail_from=first_address(fields.get("original-mail-from", "")),
    )


def jmrp_recipient(message: Message) -> str | None:
    """The complainer of a Microsoft JMRP report (not ARF), or None when it is not one."""
    for part in message.walk():
        value = part.get("X-HmXmrOriginalRecipient")
        if value:
            return first_address(str(value))
    return None
