"""Amazon SES notifications: the JSON documents SES writes about a bounce or a complaint.

They arrive two ways: posted by SNS to the webhook (bounce/webhooks.py), or mailed, when an SNS
topic has an email subscription or a sender forwards them, as the body of a plain message (the
mailbox simulator's bounce@simulator.amazonses.com answers come back like this too). Both read
the same fields here: `notificationType` (or `eventType`), then `bounce.bouncedRecipients` or
`complaint.complainedRecipients`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bounce.reasons import Reason

# SES's bounceSubType, when the recipient's own text says nothing more specific.
SUBTYPES = {
    "noemail": Reason.USERUNKNOWN,
    "suppressed": Reason.USERUNKNOWN,
    "onaccountsuppressionlist": Reason.USERUNKNOWN,
    "mailboxfull": Reason.MAILBOXFULL,
    "messagetoolarge": Reason.MESGTOOBIG,
    "contentrejected": Reason.CONTENTERROR,
    "attachmentrejected": Reason.POLICYVIOLATION,
}
_MAX_MAILED = 256 * 1024  # a mailed notification is a few KB; json.loads is linear anyway


@dataclass(slots=True)
class SesRecipient:
    """One recipient of a bounce or complaint notification."""

    complaint: bool
    address: str
    status: str = ""
    diagnostic: str = ""
    action: str = ""
    remote_mta: str = ""
    hint: Reason | None = None  # from bounceSubType
    permanent: bool | None = None  # bounceType Permanent / Transient
    message_id: str = ""  # the bounced message's Message-ID header, when SES echoes it


def recipients(message: dict[str, Any]) -> list[SesRecipient]:
    """The recipients a notification is about; [] for deliveries and anything else."""
    kind = str(message.get("notificationType") or message.get("eventType") or "").lower()
    mail = message.get("mail") or {}
    message_id = str((mail.get("commonHeaders") or {}).get("messageId", "") or "")
    if kind == "bounce":
        bounce = message.get("bounce") or {}
        permanent = {"permanent": True, "transient": False}.get(
            str(bounce.get("bounceType", "")).lower()
        )
        hint = SUBTYPES.get(str(bounce.get("bounceSubType", "")).lower())
        return [
            SesRecipient(
                False,
                str(r.get("emailAddress", "")),
                status=str(r.get("status", "")),
                diagnostic=str(r.get("diagnosticCode", "")),
                action=str(r.get("action", "failed")),
                remote_mta=str(bounce.get("reportingMTA", "")),
                hint=hint,
                permanent=permanent,
                message_id=message_id,
            )
            for r in bounce.get("bouncedRecipients") or []
            if isinstance(r, dict)
        ]
    if kind == "complaint":
        complaint = message.get("complaint") or {}
        return [
            SesRecipient(
                True,
                str(r.get("emailAddress", "")),
                diagnostic=str(complaint.get("complaintFeedbackType", "abuse")),
                message_id=message_id,
            )
            for r in complaint.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
    return []


def mailed_notification(text: str) -> dict[str, Any] | None:
    """The notification a mailed body holds, or None when it is not one."""
    head = text[:_MAX_MAILED]
    start = head.find("{")
    if start < 0 or not ("notificationType" in head or "eventType" in head):
        return None
    try:
        doc = json.JSONDecoder().raw_decode(head[start:])[0]
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and recipients(doc) else None
