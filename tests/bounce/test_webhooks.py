"""Provider webhooks against the running daemon's HTTP API: Amazon SES through SNS (signed with
our own key, its certificate served locally), SendGrid (ECDSA), Mailgun (HMAC), Postmark
(Basic credentials). Forged notifications are refused and record nothing."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from bounce.suppressions import list_suppressions
from bounce.webhooks import sns_string_to_sign
from tests.support.bounce import daemon_with_mx, delivered
from tests.support.fixtures_daemon import free_port

MAILGUN_KEY = "mailgun-signing-key"
POSTMARK = "hooks:s3cret"


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def sns_host():
    """A local stand-in for SNS: serves the signing certificate and counts subscription
    confirmations."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state: dict[str, Any] = {"confirmed": 0, "key": key}
    app = web.Application()

    async def cert(_: web.Request) -> web.Response:
        return web.Response(body=_certificate(key))

    async def confirm(_: web.Request) -> web.Response:
        state["confirmed"] += 1
        return web.Response(text="<ConfirmSubscriptionResponse/>")

    app.router.add_get("/cert.pem", cert)
    app.router.add_get("/confirm", confirm)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state["base"] = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def hooked(daemon_factory, dns_server, mx_factory, mx_port, sns_host, sendgrid_key):
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    daemon, _ = await daemon_with_mx(
        daemon_factory,
        dns_server,
        mx_factory,
        mx_port,
        bounce={
            "webhook_sns_cert_url": "^" + sns_host["base"].replace(".", r"\.") + "/",
            "webhook_sendgrid_public_key": base64.b64encode(public).decode(),
            "webhook_mailgun_signing_key": MAILGUN_KEY,
            "webhook_postmark_credentials": POSTMARK,
        },
    )
    row = await delivered(daemon, "alice@dest.test")
    message_id = await daemon.db.fetchval(
        "SELECT m.message_id FROM messages m JOIN recipients r ON r.message_id = m.id"
        " WHERE r.id = $1",
        row["id"],
    )
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        yield daemon, client, row, message_id


def _sns(sns_host: dict, doc: dict, version: str = "1") -> dict:
    doc = {**doc, "SignatureVersion": version, "SigningCertURL": sns_host["base"] + "/cert.pem"}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = sns_host["key"].sign(sns_string_to_sign(doc), padding.PKCS1v15(), algorithm)
    doc["Signature"] = base64.b64encode(signature).decode()
    return doc


def _now_iso(offset: float = 0) -> str:
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ses_bounce(message_id: str) -> dict:
    message = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "reportingMTA": "dsn; a8-1.smtp-out.amazonses.com",
            "bouncedRecipients": [
                {
                    "emailAddress": "alice@dest.test",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
        },
        "mail": {"commonHeaders": {"messageId": message_id}},
    }
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-bounces",
        "Message": json.dumps(message),
        "Timestamp": _now_iso(),
    }


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_ses_bounce_is_recorded_and_suppresses(hooked, sns_host, version):
    daemon, client, row, message_id = hooked
    response = await client.post(
        "/webhooks/ses", json=_sns(sns_host, _ses_bounce(message_id), version)
    )
    assert response.json() == {"recorded": 1}
    event = await daemon.db.fetchrow("SELECT * FROM bounce_events")
    assert (event["recipient_id"], event["reason"], event["hard"]) == (
        row["id"],
        "userunknown",
        True,
    )
    assert event["source"] == "webhook:ses"
    (suppression,) = await list_suppressions(daemon.db)
    assert suppression.address == "alice@dest.test" and "webhook:ses" in suppression.evidence


async def test_a_forged_or_foreign_sns_message_is_refused(hooked, sns_host):
    daemon, client, _, message_id = hooked
    doc = _sns(sns_host, _ses_bounce(message_id))
    tampered = {**doc, "Message": doc["Message"].replace("alice", "mallory")}
    foreign = {**doc, "SigningCertURL": "https://evil.example/cert.pem"}
    for bad in (tampered, foreign):
        assert (await client.post("/webhooks/ses", json=bad)).status_code == 403
    assert await daemon.db.fetchval("SELECT count(*) FROM bounce_events") == 0


async def test_an_sns_subscription_is_confirmed(hooked, sns_host):
    _, client, _, _ = hooked
    doc = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-bounces",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": sns_host["base"] + "/confirm",
        "Timestamp": _now_iso(),
    }
    assert (await client.post("/webhooks/ses", json=_sns(sns_host, doc))).status_code == 200
    assert sns_host["confirmed"] == 1


async def test_a_sendgrid_spam_report_suppresses_and_unsubscribes(hooked, sendgrid_key):
    daemon, client, _, message_id = hooked
    body = json.dumps(
        [
            {"email": "alice@dest.test", "event": "spamreport", "smtp-id": message_id},
            {"email": "alice@dest.test", "event": "delivered", "smtp-id": message_id},
        ]
    ).encode()
    stamp = str(int(time.time()))
    signature = sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    forged = {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) - 1)}
    assert (
        await client.post("/webhooks/sendgrid", content=body, headers=forged)
    ).status_code == 403
    response = await client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.json() == {"recorded": 1}
    assert (await list_suppressions(daemon.db))[0].reason == "complaint"
    assert await daemon.db.fetchval("SELECT source FROM unsubscriptions") == "complaint"


def _mailgun(event: dict, key: str = MAILGUN_KEY, token: str = "a" * 50, stamp: str = "") -> dict:
    stamp = stamp or str(int(time.time()))
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": event,
    }


async def test_mailgun_failures_are_classified_from_their_reply(hooked):
    daemon, client, _, message_id = hooked
    event = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "alice@dest.test",
        "delivery-status": {"code": 552, "message": "5.2.2 Mailbox full", "description": ""},
        "message": {"headers": {"message-id": message_id.strip("<>")}},
    }
    bad = await client.post("/webhooks/mailgun", json=_mailgun(event, "wrong-key"))
    assert bad.status_code == 403
    assert (await client.post("/webhooks/mailgun", json=_mailgun(event))).json() == {"recorded": 1}
    row = await daemon.db.fetchrow("SELECT reason, hard, kind::text FROM bounce_events")
    assert (row["reason"], row["hard"], row["kind"]) == ("mailboxfull", False, "bounced")
    assert await list_suppressions(daemon.db) == []  # one soft bounce is not enough


async def test_postmark_needs_its_credentials(hooked):
    daemon, client, _, _ = hooked
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "Email": "alice@dest.test",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    }
    assert (await client.post("/webhooks/postmark", json=bounce)).status_code == 401
    user, password = POSTMARK.split(":")
    response = await client.post("/webhooks/postmark", json=bounce, auth=(user, password))
    assert response.json() == {"recorded": 1}
    assert (await list_suppressions(daemon.db))[0].reason == "userunknown"


async def test_an_unconfigured_provider_is_not_found(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        for provider in ("ses", "sendgrid", "mailgun", "postmark"):
            assert (await client.post(f"/webhooks/{provider}", json={})).status_code == 404


def test_ses_event_publishing_and_complaints_read_like_notifications():
    from bounce.events import EventKind
    from bounce.webhooks import ses_notices

    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "ann@dest.test"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": {"commonHeaders": {"messageId": "<m@example.test>"}},
    }
    (notice,) = ses_notices(complaint)
    assert (notice.kind, notice.address, notice.message_id) == (
        EventKind.COMPLAINED,
        "ann@dest.test",
        "<m@example.test>",
    )
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["ann@dest.test"]}}
    assert ses_notices(delivery) == []


def test_a_tenants_bounce_settings_ignore_what_they_do_not_understand():
    from bounce.policy import BouncePolicy

    policy = BouncePolicy.from_settings(
        {"soft_bounce_limit": "5", "suppress_hard": 1, "soft_bounce_window_days": 3, "x": 1}
    )
    assert policy == BouncePolicy(soft_bounce_window_days=3)
    assert BouncePolicy.from_settings(None) == BouncePolicy()


# --- replay and substitution (issue 12.5) ---------------------------------------------------


async def _count(daemon) -> int:
    return await daemon.db.fetchval("SELECT count(*) FROM bounce_events")


async def test_a_mailgun_signature_block_is_good_once_whatever_body_it_is_attached_to(hooked):
    daemon, client, _, _ = hooked
    genuine = {
        "id": "ev-1",
        "event": "failed",
        "severity": "temporary",
        "recipient": "alice@dest.test",
        "delivery-status": {"message": "4.2.2 full"},
    }
    signed = _mailgun(genuine, token="t" * 50)
    assert (await client.post("/webhooks/mailgun", json=signed)).json() == {"recorded": 1}
    # The same signature block with another body: an unsubscribe of someone else.
    forged = {
        **signed,
        "event-data": {"id": "ev-2", "event": "unsubscribed", "recipient": "victim@dest.test"},
    }
    response = await client.post("/webhooks/mailgun", json=forged)
    assert response.status_code == 200 and response.json() == {"recorded": 0}
    assert await _count(daemon) == 1
    assert await daemon.db.fetchval("SELECT count(*) FROM unsubscriptions") == 0


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e999", "0", "x"])
async def test_mailgun_timestamps_must_be_finite_and_fresh(hooked, stamp):
    daemon, client, _, _ = hooked
    event = {"event": "unsubscribed", "recipient": "alice@dest.test"}
    response = await client.post("/webhooks/mailgun", json=_mailgun(event, stamp=stamp))
    assert response.status_code == 403, response.text
    assert await _count(daemon) == 0


async def test_a_sendgrid_request_is_taken_once_and_each_event_id_once(hooked, sendgrid_key):
    daemon, client, _, message_id = hooked

    def signed(events: list) -> tuple[bytes, dict]:
        body = json.dumps(events).encode()
        stamp = str(int(time.time()))
        signature = sendgrid_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return body, {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }

    event = {
        "email": "alice@dest.test",
        "event": "deferred",
        "sg_event_id": "sg-1",
        "response": "451 4.7.1 try later",
        "smtp-id": message_id,
    }
    body, headers = signed([event])
    assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {
        "recorded": 1
    }
    replay = await client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert replay.json() == {"recorded": 0}
    # A retry of the same event in a new (re-signed) request: still recorded once.
    body, headers = signed([event, {**event, "sg_event_id": "sg-2"}])
    assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {
        "recorded": 1
    }
    assert await _count(daemon) == 2


async def test_ses_notifications_must_be_fresh_and_count_once(hooked, sns_host):
    daemon, client, _, message_id = hooked
    doc = _sns(sns_host, _ses_bounce(message_id))
    assert (await client.post("/webhooks/ses", json=doc)).json() == {"recorded": 1}
    assert (await client.post("/webhooks/ses", json=doc)).json() == {"recorded": 0}
    stale = _sns(
        sns_host, {**_ses_bounce(message_id), "MessageId": "m-2", "Timestamp": _now_iso(-2 * 86400)}
    )
    assert (await client.post("/webhooks/ses", json=stale)).status_code == 403
    assert await _count(daemon) == 1


async def test_a_postmark_retry_is_recorded_once(hooked):
    _, client, _, _ = hooked
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "SoftBounce",
        "Email": "alice@dest.test",
        "Details": "452 4.2.2 mailbox full",
    }
    user, password = POSTMARK.split(":")
    for expected in (1, 0):
        response = await client.post("/webhooks/postmark", json=bounce, auth=(user, password))
        assert response.json() == {"recorded": expected}
