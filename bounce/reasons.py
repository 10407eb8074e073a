"""The bounce vocabulary: why a recipient failed (Sisimai's reasons) and what a report is.

Every failed recipient gets exactly one `Reason`; `hard` says whether the failure is a lasting
property of the address (suppress at once) or may pass (count it, suppress after repeats).
`feedback` (a complaint) and `vacation` (an auto-reply) are neither: their `hard` is None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    USERUNKNOWN = "userunknown"
    MAILBOXFULL = "mailboxfull"
    HOSTUNKNOWN = "hostunknown"
    FILTERED = "filtered"
    BLOCKED = "blocked"
    REJECTED = "rejected"
    EXPIRED = "expired"
    POLICYVIOLATION = "policyviolation"
    SECURITYERROR = "securityerror"
    SPAMDETECTED = "spamdetected"
    VIRUSDETECTED = "virusdetected"
    SUSPEND = "suspend"
    NETWORKERROR = "networkerror"
    SYSTEMERROR = "systemerror"
    SYSTEMFULL = "systemfull"
    MAILERERROR = "mailererror"
    TOOMANYCONN = "toomanyconn"
    SPEEDING = "speeding"
    NOTACCEPT = "notaccept"
    NORELAYING = "norelaying"
    HASMOVED = "hasmoved"
    MESGTOOBIG = "mesgtoobig"
    EXCEEDLIMIT = "exceedlimit"
    CONTENTERROR = "contenterror"
    SYNTAXERROR = "syntaxerror"
    AUTHFAILURE = "authfailure"
    BADREPUTATION = "badreputation"
    REQUIREPTR = "requireptr"
    ONHOLD = "onhold"
    UNDEFINED = "undefined"
    FEEDBACK = "feedback"
    VACATION = "vacation"


# Reasons that say something about the sender or the path, not the recipient (issue 4): they
# never suppress an address; they raise a per-destination signal instead.
REPUTATION_REASONS = frozenset(
    {
        Reason.BLOCKED,
        Reason.BADREPUTATION,
        Reason.SPAMDETECTED,
        Reason.AUTHFAILURE,
        Reason.REQUIREPTR,
        Reason.TOOMANYCONN,
        Reason.SPEEDING,
        Reason.POLICYVIOLATION,
    }
)


class ReportKind(StrEnum):
    """What an inbound message turned out to be."""

    BOUNCE = "bounce"  # a DSN or a non-standard bounce: failed (or delayed) recipients
    COMPLAINT = "complaint"  # an ARF feedback report
    VACATION = "vacation"  # an auto-reply / out-of-office: not a bounce
    UNREADABLE = "unreadable"  # nothing could be made of it: kept and reported as undefined


@dataclass(slots=True)
class FailedRecipient:
    """One recipient a report is about, classified."""

    recipient: str  # lower-cased address ('' when the report did not name one)
    reason: Reason
    hard: bool | None
    status: str = ""  # RFC 3463 code, e.g. "5.1.1"
    action: str = ""  # failed | delayed | ... (RFC 3464), "" when not stated
    diagnostic: str = ""  # the remote reply or the bounce text, whitespace folded
    remote_mta: str = ""
    original_recipient: str = ""


@dataclass(slots=True)
class OriginalHeaders:
    """What the report tells about the message that bounced, to find our recipient row."""

    message_id: str = ""
    return_path: str = ""  # our VERP address when the report quotes it
    to: str = ""
    subject: str = ""


@dataclass(slots=True)
class Report:
    """An inbound message parsed: its kind, its recipients, the original's headers."""

    kind: ReportKind
    recipients: list[FailedRecipient] = field(default_factory=list)
    original: OriginalHeaders = field(default_factory=OriginalHeaders)
    feedback_type: str = ""  # ARF Feedback-Type (abuse, fraud, ...)
    error: str = ""  # why the message could not be read, for UNREADABLE
