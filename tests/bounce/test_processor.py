"""The bounce processor in the running daemon: DSNs and complaints sent over SMTP to the bounce
listener, SMTP refusals during delivery, the per-tenant suppression policy, unsubscribes, and
two processors sharing one queue of inbound mail."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib
import httpx
import pytest

from bounce.processor import BounceProcessor
from bounce.suppressions import lift, list_suppressions
from mta import queue, tenants
from mta.config import parse_hostport
from mta.inbound import store_inbound
from mta.secret import server_secret
from mta.verp import Verp
from tests.support.bounce import daemon_with_mx, delivered
from tests.support.delivery import submit, wait_final
from tests.support.fixtures_daemon import TEST_DOMAIN

BOUNCE_DOMAIN = "bounces.sendmill.test"


def _verp(daemon, recipient_id: int, local_part: str = "b") -> str:
    return Verp(server_secret(daemon.config), BOUNCE_DOMAIN, local_part).address(recipient_id)


async def _send_to_bounce_listener(daemon, rcpt: str, message: bytes) -> None:
    host, port = parse_hostport(daemon.config.bounce.listen, 25, "bounce.listen")
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
        await client.sendmail("", [rcpt], message)  # the null reverse-path of DSNs
    daemon.bounce.wake()


async def _wait_processed(daemon, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await daemon.db.fetch("SELECT * FROM inbound_reports ORDER BY inbound_id")
        if len(rows) >= count or time.monotonic() > deadline:
            return [dict(r) for r in rows]
        await asyncio.sleep(0.05)


async def _slowed_sites(daemon) -> float:
    """The sites-slowed gauge on /metrics."""
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        exposition = (await client.get("/metrics")).text
    line = next(x for x in exposition.splitlines() if x.startswith("sendmill_sites_slowed "))
    return float(line.split()[1])


def _dsn(verp: str, recipient: str, status: str, diagnostic: str, message_id: str = "") -> bytes:
    headers = f"Message-ID: {message_id}\r\n" if message_id else ""
    return (
        "From: MAILER-DAEMON@mx1.dest.test (Mail Delivery System)\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx1.dest.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}From: app@example.test\r\nTo: {recipient}\r\nSubject: Hello\r\n\r\n"
        "--B--\r\n"
    ).encode()


async def test_a_dsn_to_the_verp_address_bounces_and_suppresses_the_recipient(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, mx = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "alice@dest.test")
    dsn = _dsn(_verp(daemon, row["id"]), "alice@dest.test", "5.1.1", "550 5.1.1 User unknown")
    await _send_to_bounce_listener(daemon, _verp(daemon, row["id"]), dsn)
    (report,) = await _wait_processed(daemon, 1)
    assert (report["kind"], report["recipients"]) == ("bounce", 1)
    event = await daemon.db.fetchrow("SELECT * FROM bounce_events")
    assert (event["kind"], event["reason"], event["hard"]) == ("bounced", "userunknown", True)
    assert event["recipient_id"] == row["id"] and event["source"] == "dsn"
    (suppression,) = await list_suppressions(daemon.db)
    assert (suppression.address, suppression.reason) == ("alice@dest.test", "userunknown")
    assert "550 5.1.1 User unknown" in suppression.evidence
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        exposition = (await client.get("/metrics")).text
    assert (
        'sendmill_bounce_events_total{kind="bounced",reason="userunknown",source="dsn"}'
        in exposition
    )

    # The next message to her is never sent; lifting the suppression lets mail through again.
    await submit(daemon, ["alice@dest.test"])  # suppressed at enqueue, before any delivery
    states = await daemon.db.fetch("SELECT state::text FROM recipients ORDER BY id")
    assert [r["state"] for r in states] == ["delivered", "suppressed"]
    assert await lift(daemon.db, "acme", "alice@dest.test")
    assert await list_suppressions(daemon.db) == []
    assert len(mx.messages) == 1


async def test_soft_bounces_suppress_on_the_third_within_the_window(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    for n in range(3):
        row = await delivered(daemon, "bob@dest.test")
        verp = _verp(daemon, row["id"])
        dsn = _dsn(verp, "bob@dest.test", "4.2.2", "452 4.2.2 Mailbox full")
        await _send_to_bounce_listener(daemon, verp, dsn)
        await _wait_processed(daemon, n + 1)
        suppressed = await list_suppressions(daemon.db)
        assert bool(suppressed) is (n == 2), f"after {n + 1} soft bounces: {suppressed}"
    assert "mailboxfull" in suppressed[0].reason


async def test_a_tenant_can_raise_its_soft_bounce_limit(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "bob@dest.test")
    await daemon.db.execute(
        "UPDATE companies SET settings = $1",  # the pool's codec encodes jsonb
        {"bounce": {"soft_bounce_limit": 10, "suppress_hard": False}},
    )
    for status, text in (("4.2.2", "452 4.2.2 Mailbox full"), ("5.1.1", "550 5.1.1 unknown")):
        for _ in range(3):
            verp = _verp(daemon, row["id"])
            await _send_to_bounce_listener(daemon, verp, _dsn(verp, "bob@dest.test", status, text))
    await _wait_processed(daemon, 6)
    assert await daemon.db.fetchval("SELECT count(*) FROM bounce_events") == 6
    assert await list_suppressions(daemon.db) == []


async def _wait_slowed(daemon, expected: float, timeout: float = 10) -> bool:
    """Slow-downs travel as database notifications: wait for the gauge to show them."""
    deadline = time.monotonic() + timeout
    while await _slowed_sites(daemon) != expected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_dsn_reputation_refusal_slows_the_site_in_every_daemon(
    tmp_path, daemon_factory, dns_server, mx_factory, mx_port
):
    settings = {"delivery": {"batch_size": 1, "poll_interval": "0.05s"}}
    first, mx = await daemon_with_mx(
        daemon_factory, dns_server, mx_factory, mx_port, state_dir=str(tmp_path / "a"), **settings
    )
    await daemon_factory(state_dir=str(tmp_path / "b"), **settings)
    mx.accept_delay = 0.05
    company = await tenants.ensure_company(first.db, "acme")
    for i in range(16):
        await queue.enqueue(
            first.db,
            queue.Submission(
                company_id=company,
                credential_id=None,
                mail_from=f"app@{TEST_DOMAIN}",
                from_domain=TEST_DOMAIN,
                recipients=[f"r{i}@dest.test"],
                body=f"From: app@{TEST_DOMAIN}\r\nSubject: {i}\r\n\r\nhi\r\n".encode(),
            ),
            3600,
        )
    rows = await wait_final(first, 16)
    assert await first.db.fetchval("SELECT count(DISTINCT node) FROM attempts") == 2
    before = await _slowed_sites(first)  # one registry: both daemons run in this process
    verp = _verp(first, rows[0]["id"])
    text = "550 5.7.1 Message rejected due to poor sender reputation"
    await _send_to_bounce_listener(first, verp, _dsn(verp, rows[0]["recipient"], "5.7.1", text))
    assert await _wait_slowed(first, before + 2), "not every daemon slowed the site down"


async def test_reputation_refusals_raise_a_signal_and_never_suppress(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "carol@dest.test")
    before = await _slowed_sites(daemon)
    verp = _verp(daemon, row["id"])
    text = "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org"
    await _send_to_bounce_listener(daemon, verp, _dsn(verp, "carol@dest.test", "5.7.1", text))
    await _wait_processed(daemon, 1)
    assert await list_suppressions(daemon.db) == []
    assert await _wait_slowed(daemon, before + 1)  # as a 421 would have
    signal = await daemon.db.fetchrow("SELECT * FROM bounce_signals")
    assert (signal["domain"], signal["reason"], signal["count"]) == ("dest.test", "blocked", 1)
    assert "spamhaus" in signal["last_evidence"]


async def test_a_complaint_at_the_fbl_address_suppresses_and_unsubscribes(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "dave@dest.test")
    arf = (
        "From: fbl@isp.example\r\nTo: fbl@bounces.sendmill.test\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n\r\n"
        "--F\r\nContent-Type: message/rfc822\r\n\r\n"
        f"Return-Path: <{_verp(daemon, row['id'])}>\r\nFrom: app@example.test\r\n"
        "To: redacted@isp.example\r\nSubject: Hello\r\n\r\nBody\r\n--F--\r\n"
    ).encode()
    await _send_to_bounce_listener(daemon, f"fbl@{BOUNCE_DOMAIN}", arf)
    (report,) = await _wait_processed(daemon, 1)
    assert report["kind"] == "complaint"
    event = await daemon.db.fetchrow("SELECT * FROM bounce_events")
    assert (event["kind"], event["address"], event["source"]) == (
        "complained",
        "dave@dest.test",
        "arf",
    )
    (suppression,) = await list_suppressions(daemon.db)
    assert suppression.reason == "complaint"
    unsub = await daemon.db.fetchrow("SELECT * FROM unsubscriptions")
    assert (unsub["address"], unsub["list_id"], unsub["source"]) == (
        "dave@dest.test",
        0,
        "complaint",
    )


async def test_a_mailto_unsubscribe_request_unsubscribes_without_suppressing(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "erin@dest.test")
    address = _verp(daemon, row["id"], "unsubscribe")
    request = f"From: erin@dest.test\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode()
    await _send_to_bounce_listener(daemon, address, request)
    (report,) = await _wait_processed(daemon, 1)
    assert report["kind"] == "unsubscribe"
    unsub = await daemon.db.fetchrow("SELECT * FROM unsubscriptions")
    assert (unsub["address"], unsub["source"]) == ("erin@dest.test", "mailto")
    assert await list_suppressions(daemon.db) == []


async def test_the_trackers_mailto_unsubscribe_address_leaves_the_list_it_names(
    daemon_factory, dns_server, mx_factory, mx_port
):
    from tracker.server import build_codec
    from tracker.tokens import Token, TokenKind

    daemon, _ = await daemon_with_mx(
        daemon_factory, dns_server, mx_factory, mx_port, tracker={"unsubscribe_mailto": True}
    )
    row = await delivered(daemon, "ivan@dest.test")
    company = await daemon.db.fetchval("SELECT company_id FROM recipients WHERE id = $1", row["id"])
    token = build_codec(daemon.config).make_hex(
        Token(TokenKind.UNSUBSCRIBE, row["id"], company, campaign_id=3, list_id=7)
    )
    address = f"unsubscribe+{token}@{BOUNCE_DOMAIN}"
    request = f"From: ivan@dest.test\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode()
    await _send_to_bounce_listener(daemon, address, request)
    await _wait_processed(daemon, 1)
    unsub = await daemon.db.fetchrow("SELECT * FROM unsubscriptions")
    assert (unsub["address"], unsub["list_id"], unsub["source"]) == ("ivan@dest.test", 7, "mailto")
    forged = f"unsubscribe+{token[:-2] + ('00' if token[-2:] != '00' else '11')}@{BOUNCE_DOMAIN}"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await _send_to_bounce_listener(daemon, forged, request)


async def test_other_addresses_of_the_bounce_domain_are_still_refused(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    forged = _verp(daemon, 1, "unsubscribe").replace("-", "-x", 1)
    for rcpt in (f"postmaster-{time.time_ns()}@{BOUNCE_DOMAIN}", forged):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await _send_to_bounce_listener(daemon, rcpt, b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.recipients[0].code == 550


async def test_a_dsn_without_its_verp_token_is_found_by_message_id(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "frank@dest.test")
    message_id = await daemon.db.fetchval(
        "SELECT m.message_id FROM messages m JOIN recipients r ON r.message_id = m.id"
        " WHERE r.id = $1",
        row["id"],
    )
    # Forwarded by a person to the feedback address: no VERP token anywhere in it.
    dsn = _dsn(f"fbl@{BOUNCE_DOMAIN}", "frank@dest.test", "5.1.1", "550 5.1.1 unknown", message_id)
    await _send_to_bounce_listener(daemon, f"fbl@{BOUNCE_DOMAIN}", dsn)
    await _wait_processed(daemon, 1)
    event = await daemon.db.fetchrow("SELECT * FROM bounce_events")
    assert (event["recipient_id"], event["reason"]) == (row["id"], "userunknown")


async def test_an_unreadable_message_is_kept_and_reported(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "gina@dest.test")
    garbage = b"X-Junk: \xff\xfe\r\n\r\n\x00\x01 nothing a person or a program would call a report"
    await _send_to_bounce_listener(daemon, _verp(daemon, row["id"]), garbage)
    (report,) = await _wait_processed(daemon, 1)
    assert report["kind"] == "unreadable" and report["error"]
    kept = await daemon.db.fetchrow("SELECT body, processed_at FROM inbound_messages")
    assert b"would call a report" in kept["body"] and kept["processed_at"] is not None
    assert await daemon.db.fetchval("SELECT count(*) FROM bounce_events") == 0


async def test_nul_bytes_and_undecodable_headers_do_not_stop_processing(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    row = await delivered(daemon, "hank@dest.test")
    verp = _verp(daemon, row["id"])
    hostile = (
        _dsn(verp, "hank@dest.test", "5.1.1", "550 5.1.1 no\x00such user MARK")
        .replace(b"MARK", b"\xff\xfe")
        .replace(b"Subject: Undelivered", b"Subject: \xff\x00Undelivered")
    )
    await _send_to_bounce_listener(daemon, verp, hostile)
    await _send_to_bounce_listener(daemon, verp, _dsn(verp, "hank@dest.test", "5.1.1", "550 x"))
    reports = await _wait_processed(daemon, 2)
    assert [r["kind"] for r in reports] == ["bounce", "bounce"]
    diagnostics = [r["diagnostic"] for r in await daemon.db.fetch("SELECT * FROM bounce_events")]
    assert len(diagnostics) == 2 and "\x00" not in diagnostics[0]


async def test_a_refusal_during_delivery_goes_through_the_same_classifier_and_policy(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, mx = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    mx.fail_rcpt["nobody@dest.test"] = (550, "5.1.1 <nobody@dest.test>: User unknown")
    mx.fail_rcpt["busy@dest.test"] = (421, "4.7.28 unusual rate of unsolicited mail")
    await submit(daemon, ["nobody@dest.test", "busy@dest.test"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        kinds = await daemon.db.fetch("SELECT address, kind::text, reason FROM bounce_events")
        if {(r["address"], r["kind"]) for r in kinds} >= {
            ("nobody@dest.test", "bounced"),
            ("busy@dest.test", "deferred"),
        }:
            break
        await asyncio.sleep(0.1)
    reasons = {r["address"]: r["reason"] for r in kinds}
    assert reasons == {"nobody@dest.test": "userunknown", "busy@dest.test": "badreputation"}
    (suppression,) = await list_suppressions(daemon.db)
    assert suppression.address == "nobody@dest.test"
    assert "smtp" in suppression.evidence


async def test_two_processors_share_the_inbound_queue_without_double_processing(pool):
    company = await pool.fetchval("INSERT INTO companies (name) VALUES ('acme') RETURNING id")
    message = await pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size)"
        " VALUES ($1, 'a@example.test', 'example.test', '', 0) RETURNING id",
        company,
    )
    verp = Verp(b"secret", BOUNCE_DOMAIN)
    for n in range(60):
        rid = await pool.fetchval(
            "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at)"
            " VALUES ($1, $2, $3, 'dest.test', now() + interval '1 day') RETURNING id",
            message,
            company,
            f"user{n}@dest.test",
        )
        dsn = _dsn(verp.address(rid), f"user{n}@dest.test", "5.1.1", "550 5.1.1 unknown")
        await store_inbound(pool, rid, "", verp.address(rid), dsn)
    processors = [
        BounceProcessor(pool, verp, Verp(b"secret", BOUNCE_DOMAIN, "unsubscribe"), batch_size=7)
        for _ in range(2)
    ]

    async def drain(p: BounceProcessor) -> int:
        total = 0
        while n := await p.process_once():
            total += n
        return total

    done = await asyncio.gather(*(drain(p) for p in processors))
    assert sum(done) == 60
    assert await pool.fetchval("SELECT count(*) FROM bounce_events") == 60
    assert await pool.fetchval("SELECT count(DISTINCT recipient_id) FROM bounce_events") == 60
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 60


async def test_a_reputation_refusal_during_delivery_slows_the_site_and_suppresses_nobody(
    daemon_factory, dns_server, mx_factory, mx_port
):
    daemon, mx = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    text = "5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
    mx.fail_rcpt["judy@dest.test"] = (554, text)

    before = await _slowed_sites(daemon)
    await submit(daemon, ["judy@dest.test"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and await _slowed_sites(daemon) == before:
        await asyncio.sleep(0.1)
    assert await _slowed_sites(daemon) == before + 1
    event = await daemon.db.fetchrow("SELECT * FROM bounce_events")
    assert (event["reason"], event["source"]) == ("blocked", "smtp")
    assert await list_suppressions(daemon.db) == []
    assert await daemon.db.fetchval("SELECT count FROM bounce_signals") == 1
