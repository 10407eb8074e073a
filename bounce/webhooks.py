"""Provider webhooks for operators who relay through an ESP: Amazon SES (through SNS, signature
verified against the signing certificate), SendGrid (ECDSA-signed event webhook), Mailgun
(HMAC-signed) and Postmark (HTTP Basic credentials in the webhook URL). Each notification is
classified by the same classifier as a DSN and goes through the same events and policy.

Mounted by mta/daemon.py at /webhooks on the HTTP API:
    POST /webhooks/ses   POST /webhooks/sendgrid   POST /webhooks/mailgun   POST /webhooks/postmark
A provider whose secret is not configured answers 404.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bounce import events, policy, ses
from bounce.classify import Classifier, default_classifier
from bounce.events import BounceEvent, EventKind, storable
from bounce.reasons import Reason
from mta.queries import Queries

log = logging.getLogger("sendmill.bounce.webhooks")
SQL = Queries("bounce")

MAX_BODY = 1024 * 1024
MAX_SKEW = 600  # seconds a signed timestamp may be off (replays older than that are refused)
# SNS retries a failed delivery with back-off; its Timestamp is the publication time.
SNS_MAX_AGE = 3600
# How long request and event keys are remembered: past every window above, and past the
# providers' retry periods (SendGrid retries for 24 hours), so retries are recorded once.
SEEN_RETENTION = 3 * 86400


class WebhookRefused(Exception):
    """A notification that is not authentic or not readable: answered 4xx, nothing recorded."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    sns_cert_url: str = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
    sendgrid_public_key: str = ""  # base64 DER (SubjectPublicKeyInfo), as SendGrid shows it
    mailgun_signing_key: str = ""
    postmark_credentials: str = ""  # "user:password" of the webhook URL


@dataclass(slots=True)
class Notice:
    """One provider event, normalised before classification."""

    kind: EventKind
    address: str
    status: str = ""
    diagnostic: str = ""
    action: str = ""
    message_id: str = ""  # our Message-ID header, when the provider echoes it
    hint: Reason | None = None  # the provider's own category, used when the text says nothing
    permanent: bool | None = None
    remote_mta: str = ""
    event_id: str = ""  # the provider's id of the event: recorded once however often it comes


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one webhook request carries: its notices, and the key that makes the signed
    request good once (None where the provider signs nothing, e.g. Postmark)."""

    provider: str
    notices: list[Notice]
    request_key: str | None = None


# --- verification -----------------------------------------------------------------------------

_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"
    ),
}  # fmt: skip


def sns_string_to_sign(doc: dict[str, Any]) -> bytes:
    """The canonical text AWS signs: chosen fields as 'Name\\nvalue\\n', in this order."""
    names = _SNS_FIELDS.get(doc.get("Type", ""))
    if names is None:
        raise WebhookRefused(400, "unknown SNS message type")
    return "".join(f"{n}\n{doc[n]}\n" for n in names if n in doc).encode()


class SnsVerifier:
    """Checks SNS signatures; signing certificates are fetched once per URL and cached."""

    def __init__(self, allowed_url: str) -> None:
        self._allowed = re.compile(allowed_url)
        self._certs: dict[str, x509.Certificate] = {}

    async def verify(self, doc: dict[str, Any]) -> None:
        url = doc.get("SigningCertURL") or doc.get("SigningCertUrl") or ""
        if not self._allowed.match(url):
            raise WebhookRefused(403, "signing certificate URL is not an SNS one")
        try:
            signature = base64.b64decode(doc.get("Signature", ""), validate=True)
        except binascii.Error:
            raise WebhookRefused(403, "malformed signature") from None
        version = str(doc.get("SignatureVersion", "1"))
        algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)
        if algorithm is None:
            raise WebhookRefused(403, "unsupported signature version")
        cert = await self._certificate(url)
        try:
            cert.public_key().verify(  # type: ignore[union-attr,call-arg]
                signature, sns_string_to_sign(doc), padding.PKCS1v15(), algorithm
            )
        except (InvalidSignature, TypeError, ValueError):
            raise WebhookRefused(403, "SNS signature does not verify") from None

    async def _certificate(self, url: str) -> x509.Certificate:
        cert = self._certs.get(url)
        if cert is None:
            pem = await _fetch(url)
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise WebhookRefused(403, "signing certificate unreadable") from None
            self._certs[url] = cert
        return cert

    def allowed(self, url: str) -> bool:
        return bool(self._allowed.match(url))


async def _fetch(url: str) -> bytes:
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise WebhookRefused(502, f"{url}: HTTP {resp.status}")
            return await resp.content.read(64 * 1024)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookRefused(502, f"{url}: {exc}") from None


def verify_sendgrid(public_key_b64: str, signature_b64: str, timestamp: str, body: bytes) -> None:
    """SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body."""
    _check_timestamp(timestamp)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr,call-arg]
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        raise WebhookRefused(403, "SendGrid signature does not verify") from None


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str) -> None:
    """Mailgun: hex HMAC-SHA256 of timestamp + token under the webhook signing key."""
    _check_timestamp(timestamp)
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), str(signature)):
        raise WebhookRefused(403, "Mailgun signature does not verify")


def _check_timestamp(timestamp: str, max_skew: float = MAX_SKEW) -> None:
    try:
        stamp = float(timestamp)
    except ValueError:
        raise WebhookRefused(403, "bad timestamp") from None
    # "nan" compares false with everything, so it would pass `skew > max_skew`: finite only.
    if not math.isfinite(stamp) or abs(time.time() - stamp) > max_skew:
        raise WebhookRefused(403, "timestamp too old or in the future")


def check_sns_timestamp(value: Any) -> None:
    """SNS's Timestamp (ISO 8601, part of what it signs) must be recent."""
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRefused(403, "bad timestamp") from None
    if stamp.tzinfo is None:
        raise WebhookRefused(403, "bad timestamp")
    _check_timestamp(str(stamp.timestamp()), SNS_MAX_AGE)


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


# --- provider payloads ------------------------------------------------------------------------


def ses_notices(message: dict[str, Any]) -> list[Notice]:
    """Bounce and complaint notifications (notificationType) and events (eventType) of SES."""
    return [
        Notice(
            EventKind.COMPLAINED if r.complaint else EventKind.BOUNCED,
            r.address,
            status=r.status,
            diagnostic=r.diagnostic,
            action=r.action,
            message_id=r.message_id,
            hint=r.hint,
            permanent=r.permanent,
            remote_mta=r.remote_mta,
        )
        for r in ses.recipients(message)
    ]


def sendgrid_notices(items: list[Any]) -> list[Notice]:
    found = []
    for e in items:
        if not isinstance(e, dict):
            continue
        event = str(e.get("event", "")).lower()
        address = str(e.get("email", ""))
        message_id = str(e.get("smtp-id", "") or "")
        event_id = str(e.get("sg_event_id", "") or "")
        text = str(e.get("reason", "") or e.get("response", ""))
        if event in ("bounce", "dropped"):
            hint = Reason.BLOCKED if e.get("type") == "blocked" else None
            found.append(
                Notice(EventKind.BOUNCED, address, str(e.get("status", "")), text,
                       message_id=message_id, hint=hint, event_id=event_id)
            )  # fmt: skip
        elif event == "deferred":
            found.append(
                Notice(EventKind.DEFERRED, address, "", text, "delayed", message_id,
                       event_id=event_id)
            )  # fmt: skip
        elif event == "spamreport":
            found.append(
                Notice(EventKind.COMPLAINED, address, message_id=message_id, event_id=event_id)
            )
        elif event in ("unsubscribe", "group_unsubscribe"):
            found.append(
                Notice(EventKind.UNSUBSCRIBED, address, message_id=message_id, event_id=event_id)
            )
    return found


def mailgun_notices(data: dict[str, Any]) -> list[Notice]:
    return [replace(n, event_id=str(data.get("id", "") or "")) for n in _mailgun_notices(data)]


def _mailgun_notices(data: dict[str, Any]) -> list[Notice]:
    event = str(data.get("event", "")).lower()
    address = str(data.get("recipient", ""))
    headers = (data.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", ""))
    if event == "failed":
        status = data.get("delivery-status") or {}
        permanent = str(data.get("severity", "")).lower() == "permanent"
        text = " ".join(
            str(status.get(k, "")) for k in ("code", "enhanced-code", "message", "description")
        )
        kind = EventKind.BOUNCED if permanent else EventKind.DEFERRED
        return [Notice(kind, address, "", text, "failed" if permanent else "delayed", message_id,
                       permanent=permanent)]  # fmt: skip
    if event == "complained":
        return [Notice(EventKind.COMPLAINED, address, message_id=message_id)]
    if event == "unsubscribed":
        return [Notice(EventKind.UNSUBSCRIBED, address, message_id=message_id)]
    return []


_POSTMARK_TYPES = {
    "hardbounce": (Reason.USERUNKNOWN, True),
    "softbounce": (None, False),  # "unable to temporarily deliver": the text may say why
    "dnserror": (Reason.HOSTUNKNOWN, True),
    "spamnotification": (Reason.SPAMDETECTED, False),
    "blocked": (Reason.BLOCKED, False),
    "autoresponder": (Reason.VACATION, None),
    "addresschange": (Reason.HASMOVED, True),
    "manuallydeactivated": (Reason.SUSPEND, False),
    "bademailaddress": (Reason.USERUNKNOWN, True),
    "inbounderror": (Reason.SYSTEMERROR, False),
}


def postmark_notices(data: dict[str, Any]) -> list[Notice]:
    # Postmark signs nothing (its credentials authenticate); its record ID makes retries once.
    record_id = data.get("ID")
    event_id = f"{data.get('RecordType', '')}:{record_id}" if record_id else ""
    return [replace(n, event_id=event_id) for n in _postmark_notices(data)]


def _postmark_notices(data: dict[str, Any]) -> list[Notice]:
    record = str(data.get("RecordType", "")).lower()
    address = str(data.get("Email", "") or data.get("Recipient", ""))
    if record == "spamcomplaint" or str(data.get("Type", "")).lower() == "spamcomplaint":
        return [Notice(EventKind.COMPLAINED, address)]
    if record == "subscriptionchange" and data.get("SuppressSending"):
        return [Notice(EventKind.UNSUBSCRIBED, address)]
    if record != "bounce":
        return []
    hint, permanent = _POSTMARK_TYPES.get(str(data.get("Type", "")).lower(), (None, None))
    if hint is Reason.VACATION:
        return []  # an auto-reply is not a bounce
    text = f"{data.get('Description', '')} {data.get('Details', '')}".strip()
    return [Notice(EventKind.BOUNCED, address, "", text, message_id="", hint=hint,
                   permanent=permanent)]  # fmt: skip


# --- the endpoint -----------------------------------------------------------------------------


class Webhooks:
    """The webhook endpoints; `routes` are mounted by the daemon."""

    def __init__(
        self,
        db: asyncpg.Pool,
        secrets: WebhookSecrets,
        classifier: Classifier | None = None,
        fetch: Callable[[str], Awaitable[bytes]] = _fetch,
    ) -> None:
        self._db = db
        self._secrets = secrets
        self._classifier = classifier or default_classifier()
        self._sns = SnsVerifier(secrets.sns_cert_url)
        self._fetch = fetch

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/ses", self.ses, methods=["POST"]),
            Route("/sendgrid", self.sendgrid, methods=["POST"]),
            Route("/mailgun", self.mailgun, methods=["POST"]),
            Route("/postmark", self.postmark, methods=["POST"]),
        ]

    async def ses(self, request: Request) -> Response:
        async def work(body: bytes) -> Delivery:
            doc = _json(body)
            if not isinstance(doc, dict):
                raise WebhookRefused(400, "expected an SNS message")
            await self._sns.verify(doc)
            check_sns_timestamp(doc.get("Timestamp"))
            if doc.get("Type") == "SubscriptionConfirmation":
                url = str(doc.get("SubscribeURL", ""))
                if not self._sns.allowed(url):
                    raise WebhookRefused(403, "subscribe URL is not an SNS one")
                await self._fetch(url)  # confirms the subscription
                return Delivery("ses", [])
            if doc.get("Type") != "Notification":
                return Delivery("ses", [])
            message = _json(str(doc.get("Message", "")).encode())
            notices = ses_notices(message) if isinstance(message, dict) else []
            # MessageId is signed; SNS retries carry the same one: the request is the event.
            return Delivery("ses", notices, f"message:{doc.get('MessageId', '')}")

        return await self._handle(request, work, enabled=bool(self._secrets.sns_cert_url))

    async def sendgrid(self, request: Request) -> Response:
        async def work(body: bytes) -> Delivery:
            timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")
            verify_sendgrid(
                self._secrets.sendgrid_public_key,
                request.headers.get("x-twilio-email-event-webhook-signature", ""),
                timestamp,
                body,
            )
            doc = _json(body)
            notices = sendgrid_notices(doc if isinstance(doc, list) else [])
            # What is signed, not the signature: ECDSA signatures can be re-written (s, n-s).
            return Delivery("sendgrid", notices, "signed:" + _digest(timestamp.encode(), body))

        return await self._handle(request, work, bool(self._secrets.sendgrid_public_key))

    async def mailgun(self, request: Request) -> Response:
        async def work(body: bytes) -> Delivery:
            doc = _json(body)
            if not isinstance(doc, dict):
                raise WebhookRefused(400, "expected a JSON object")
            sig = doc.get("signature") or {}
            if not isinstance(sig, dict):
                raise WebhookRefused(403, "Mailgun signature does not verify")
            token = str(sig.get("token", ""))
            verify_mailgun(
                self._secrets.mailgun_signing_key,
                str(sig.get("timestamp", "")),
                token,
                str(sig.get("signature", "")),
            )
            data = doc.get("event-data")
            notices = mailgun_notices(data if isinstance(data, dict) else {})
            # Mailgun signs timestamp + token only, never the body: a signature block is good
            # once, or anyone who saw one could attach any event to it.
            return Delivery("mailgun", notices, f"token:{token}")

        return await self._handle(request, work, bool(self._secrets.mailgun_signing_key))

    async def postmark(self, request: Request) -> Response:
        async def work(body: bytes) -> Delivery:
            expected = (
                "Basic " + base64.b64encode(self._secrets.postmark_credentials.encode()).decode()
            )
            if not hmac.compare_digest(
                request.headers.get("authorization", "").encode(), expected.encode()
            ):
                raise WebhookRefused(401, "credentials required")
            doc = _json(body)
            return Delivery("postmark", postmark_notices(doc if isinstance(doc, dict) else {}))

        return await self._handle(request, work, bool(self._secrets.postmark_credentials))

    async def _handle(
        self,
        request: Request,
        work: Callable[[bytes], Awaitable[Delivery]],
        enabled: bool,
    ) -> Response:
        if not enabled:
            return JSONResponse({"error": "webhook not configured"}, status_code=404)
        try:
            body = await _read(request)
            recorded = await self._record(await work(body))
        except WebhookRefused as exc:
            log.info("webhook %s refused: %s", request.url.path, exc.detail)
            return JSONResponse({"error": exc.detail}, status_code=exc.status)
        return JSONResponse({"recorded": recorded})

    async def _record(self, delivery: Delivery) -> int:
        notices = [n for n in delivery.notices if n.address]
        if not notices and delivery.request_key is None:
            return 0
        source = f"webhook:{delivery.provider}"
        async with self._db.acquire() as conn, conn.transaction():
            notices = await self._first_seen(conn, delivery, notices)
            found = [await self._event(conn, source, n) for n in notices]
            await events.record(conn, found)
            await policy.apply(conn, found)
        return len(found)

    async def _first_seen(
        self, conn: asyncpg.Connection, delivery: Delivery, notices: list[Notice]
    ) -> list[Notice]:
        """The notices to record: none when the signed request was seen before (a replay, or
        a retry already taken), else those whose event id is new."""
        keys = [f"event:{n.event_id}" for n in notices if n.event_id]
        if delivery.request_key is not None:
            keys.append(f"request:{delivery.request_key}")
        if not keys:
            return notices
        new = {
            r["key"]
            for r in await conn.fetch(
                SQL["webhook-first-seen"], delivery.provider, keys, SEEN_RETENTION
            )
        }
        if delivery.request_key is not None and f"request:{delivery.request_key}" not in new:
            log.info("webhook %s: request seen before, nothing recorded", delivery.provider)
            return []
        return [n for n in notices if not n.event_id or f"event:{n.event_id}" in new]

    async def _event(self, conn: asyncpg.Connection, source: str, n: Notice) -> BounceEvent:
        address = storable(n.address.strip().strip("<>").lower(), 320)
        message_id = storable(n.message_id.strip("<>"), 998)
        row = await conn.fetchrow(SQL["recipient-for-webhook"], address, message_id)
        if n.kind is EventKind.COMPLAINED or n.kind is EventKind.UNSUBSCRIBED:
            reason, hard = Reason.FEEDBACK, None
        else:
            c = self._classifier.classify(n.status, n.diagnostic, n.action)
            reason, hard = c.reason, c.hard
            if reason in (Reason.ONHOLD, Reason.UNDEFINED) and n.hint is not None:
                reason, hard = n.hint, self._classifier.is_hard(n.hint, c.status)
            if reason in (Reason.ONHOLD, Reason.UNDEFINED) and n.permanent is not None:
                hard = (n.permanent and reason is Reason.ONHOLD and False) or hard
        return BounceEvent(
            kind=n.kind,
            reason=reason,
            hard=hard,
            address=address,
            source=source,
            company_id=row["company_id"] if row else None,
            recipient_id=row["id"] if row else None,
            campaign_id=row["campaign_id"] if row else None,
            status=n.status,
            diagnostic=n.diagnostic,
            remote_mta=n.remote_mta,
        )


async def _read(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise WebhookRefused(413, "notification too large")
    return body


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused(400, "not JSON") from None
