"""The tracker app against a real PostgreSQL through httpx: recording rules, privacy settings,
machine flags, the unsubscribe page, and no open redirect whatever is signed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from mta import tenants, unsubscriptions
from tracker.app import create_app
from tracker.events import EventWriter, campaign_counts
from tracker.prepare import Links
from tracker.tokens import Token, TokenCodec, TokenKind

BASE = "https://t.example.com"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15"
CODEC = TokenCodec(b"app-test-secret")
LONG_AGO = int(time.time()) - 3600


@dataclass
class Tracker:
    client: httpx.AsyncClient
    writer: EventWriter
    db: asyncpg.Pool
    company_id: int
    recipient_id: int

    def token(self, kind: TokenKind, **fields) -> str:
        values = {
            "recipient_id": self.recipient_id,
            "company_id": self.company_id,
            "campaign_id": 9,
            "list_id": 2,
            "sent_at": LONG_AGO,
            **fields,
        }
        return CODEC.make(Token(kind, **values))

    async def events(self) -> list[dict]:
        while self.writer.depth:
            await self.writer.flush()
        return [dict(r) for r in await self.db.fetch("SELECT * FROM tracking_events ORDER BY id")]


@pytest.fixture
async def tracker(pool: asyncpg.Pool) -> AsyncIterator[Tracker]:
    company_id = await tenants.ensure_company(pool, "acme")
    message_id = await pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size, category, list_id)"
        " VALUES ($1, 'news@acme.test', 'acme.test', $2, 10, 'marketing', 2) RETURNING id",
        company_id,
        b"From: news@acme.test\r\nContent-Type: text/html\r\n\r\n<p>Hi <a href='https://a.test/x'>x</a>",
    )
    recipient_id = await pool.fetchval(
        "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at, state)"
        " VALUES ($1, $2, 'Frank@Dest.test', 'dest.test', now() + interval '1 day', 'delivered')"
        " RETURNING id",
        message_id,
        company_id,
    )
    writer = EventWriter(pool, buffer_size=1000, batch_size=100, flush_interval=0.05)
    app = create_app(db=pool, codec=CODEC, links=Links(BASE), writer=writer)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.77", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"User-Agent": BROWSER}
    ) as client:
        yield Tracker(client, writer, pool, company_id, recipient_id)


async def test_a_human_open_and_click_are_recorded_with_an_anonymised_ip(tracker: Tracker):
    response = await tracker.client.get(f"/o/{tracker.token(TokenKind.OPEN)}")
    assert response.status_code == 200 and len(response.content) == 43
    click = tracker.token(TokenKind.CLICK, link_index=3, url="https://shop.test/a?b=c")
    response = await tracker.client.get(f"/c/{click}")
    assert response.status_code == 302 and response.headers["location"] == "https://shop.test/a?b=c"
    events = await tracker.events()
    assert [(e["kind"], e["machine"], str(e["ip"])) for e in events] == [
        ("open", False, "203.0.113.0"),
        ("click", False, "203.0.113.0"),
    ]
    assert events[1]["link_index"] == 3 and events[1]["recipient_id"] == tracker.recipient_id


async def test_bad_tokens_and_head_requests_record_nothing(tracker: Tracker):
    open_token = tracker.token(TokenKind.OPEN)
    for path in (f"/o/{open_token[:-2]}", "/o/", "/o/%00%ff", f"/o/{open_token}x"):
        response = await tracker.client.get(path)
        assert response.status_code == 200 and response.content[:6] == b"GIF89a"
    assert (await tracker.client.head(f"/o/{open_token}")).status_code == 200
    click = tracker.token(TokenKind.CLICK, url="https://shop.test/")
    assert (await tracker.client.head(f"/c/{click}")).status_code == 302
    assert (await tracker.client.get(f"/c/{open_token}")).status_code == 404  # wrong kind
    assert await tracker.events() == []


async def test_no_redirect_to_anything_but_a_signed_http_url(tracker: Tracker):
    # even a token we signed by mistake never sends a browser to a script or another scheme
    for url in ("javascript:alert(1)", "data:text/html,hi", "//evil.test/", "ftp://x.test/"):
        response = await tracker.client.get(f"/c/{tracker.token(TokenKind.CLICK, url=url)}")
        assert response.status_code == 404 and "location" not in response.headers
    # a non-ASCII target is percent-encoded, never sent raw in the header
    url = "https://exämple.test/ü?q=ß"
    response = await tracker.client.get(f"/c/{tracker.token(TokenKind.CLICK, url=url)}")
    assert response.headers["location"] == "https://ex%C3%A4mple.test/%C3%BC?q=%C3%9F"


async def test_machines_are_flagged_with_a_reason_and_excluded_from_human_counts(
    tracker: Tracker,
):
    fresh = int(time.time())
    client = tracker.client
    await client.get(f"/o/{tracker.token(TokenKind.OPEN)}", headers={"User-Agent": "Mozilla/5.0"})
    await client.get(
        f"/o/{tracker.token(TokenKind.OPEN)}",
        headers={"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"},
    )  # an hour after sending: a person opening in Gmail
    await client.get(f"/o/{tracker.token(TokenKind.OPEN)}")
    url = "https://shop.test/"
    await client.get(f"/c/{tracker.token(TokenKind.CLICK, url=url, sent_at=fresh)}")
    await client.get(
        f"/c/{tracker.token(TokenKind.CLICK, url=url)}",
        headers={"User-Agent": "Mozilla/5.0 Barracuda Sentinel"},
    )
    await client.get(
        f"/c/{tracker.token(TokenKind.CLICK, url=url)}", headers={"Sec-Purpose": "prefetch"}
    )
    await client.get(f"/c/{tracker.token(TokenKind.CLICK, url=url)}")
    events = await tracker.events()
    assert [(e["kind"], e["machine_reason"]) for e in events] == [
        ("open", "apple_mail_privacy_protection"),
        ("open", None),
        ("open", None),
        ("click", "clicked_within_seconds_of_delivery"),
        ("click", "security_scanner_user_agent"),
        ("click", "prefetch"),
        ("click", None),
    ]
    counts = await campaign_counts(tracker.db, tracker.company_id, 9)
    assert (counts["open"].total, counts["open"].human_total) == (3, 2)
    assert (counts["click"].total, counts["click"].human_total, counts["click"].machine_total) == (
        4,
        1,
        3,
    )
    assert counts["open"].unique_recipients == 1 and counts["open"].human_unique_recipients == 1


async def test_aggregate_only_tenants_store_no_recipient_and_no_ip(tracker: Tracker):
    settings = {"tracking": {"per_recipient": False}}
    await tracker.db.execute(
        "UPDATE companies SET settings = $1 WHERE id = $2", settings, tracker.company_id
    )
    await tracker.client.get(f"/o/{tracker.token(TokenKind.OPEN)}")
    [event] = await tracker.events()
    assert event["recipient_id"] is None and event["ip"] is None and event["campaign_id"] == 9


async def test_full_ip_is_kept_when_the_tenant_turns_anonymisation_off(tracker: Tracker):
    settings = {"tracking": {"anonymize_ip": False}}
    await tracker.db.execute(
        "UPDATE companies SET settings = $1 WHERE id = $2", settings, tracker.company_id
    )
    await tracker.client.get(f"/o/{tracker.token(TokenKind.OPEN)}")
    [event] = await tracker.events()
    assert str(event["ip"]) == "203.0.113.77"


async def test_the_unsubscribe_page_offers_one_button_and_works_without_javascript(
    tracker: Tracker,
):
    token = tracker.token(TokenKind.UNSUBSCRIBE)
    page = await tracker.client.get(f"/u/{token}")
    assert page.status_code == 200
    text = page.text
    assert '<html lang="en">' in text and 'name="viewport"' in text
    assert "frank@dest.test" in text.lower() and "<script" not in text
    assert text.count('type="submit"') == 2  # this list, or all lists
    assert await tracker.events() == []  # looking at the page changes nothing
    done = await tracker.client.post(f"/u/{token}", data={"scope": "all"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert await unsubscriptions.is_unsubscribed(tracker.db, tracker.company_id, "frank@dest.test")
    [event] = await tracker.events()
    assert event["kind"] == "unsubscribe" and event["list_id"] is None


async def test_pages_refuse_bad_tokens_and_tokens_of_other_tenants(tracker: Tracker):
    token = tracker.token(TokenKind.UNSUBSCRIBE)
    other_company = tracker.token(TokenKind.UNSUBSCRIBE, company_id=tracker.company_id + 1)
    for path in (f"/u/{token[:-1]}", f"/u/{tracker.token(TokenKind.OPEN)}", f"/u/{other_company}"):
        response = await tracker.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 404
    assert (await tracker.db.fetchval("SELECT count(*) FROM unsubscriptions")) == 0


async def test_events_wait_out_a_database_outage_and_overflow_is_counted(
    pool: asyncpg.Pool, database_url: str, pg_server_url: str
):
    """The database refuses connections and drops the writer's sessions; events stay in the
    buffer (bounded), and are all written once it is back."""
    company_id = await tenants.ensure_company(pool, "acme")
    name = urlsplit(database_url).path.lstrip("/")
    writer_pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    writer = EventWriter(writer_pool, buffer_size=50, batch_size=20, flush_interval=0.05)
    app = create_app(db=writer_pool, codec=CODEC, links=Links(BASE), writer=writer)
    writer.start()
    admin = await asyncpg.connect(pg_server_url)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            token = CODEC.make(Token(TokenKind.OPEN, 1, company_id, sent_at=LONG_AGO))
            dropped_before = _dropped((await client.get("/metrics")).text)
            await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            # pg_terminate_backend only signals: wait until the sessions are really gone, or
            # the writer may still get a batch through one of them.
            while await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            ):
                await asyncio.sleep(0.01)
            for _ in range(60):  # 50 fit in the buffer, 10 are dropped and counted
                assert (await client.get(f"/o/{token}")).status_code == 200
            await asyncio.sleep(0.5)  # the writer fails and keeps retrying meanwhile
            assert writer.depth == 50 and writer.dropped == 10
            # ... and the ten are in the metric operators alert on
            assert _dropped((await client.get("/metrics")).text) == dropped_before + 10
            await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            deadline = time.monotonic() + 15
            while writer.depth and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        assert writer.depth == 0
        assert await pool.fetchval("SELECT count(*) FROM tracking_events") == 50
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()
        await writer.stop(2)
        await writer_pool.close()


def _dropped(metrics_text: str) -> float:
    match = re.search(r"^sendmill_tracker_events_dropped_total (\S+)$", metrics_text, re.M)
    assert match, "the drop counter is exported"
    return float(match.group(1))


def test_settings_json_shape_is_what_the_writer_reads() -> None:
    # The documented document shape (README) parses as the writer expects.
    from tracker.events import Privacy

    doc = json.loads('{"tracking": {"per_recipient": false, "anonymize_ip": false}}')
    assert Privacy.from_settings(doc["tracking"]) == Privacy(
        anonymize_ip=False, per_recipient=False
    )
    assert Privacy.from_settings(None) == Privacy()


async def test_a_forwarded_for_header_is_used_only_when_trusted_and_garbage_is_not_stored(
    pool: asyncpg.Pool,
):
    company_id = await tenants.ensure_company(pool, "acme")
    await pool.execute(
        "UPDATE companies SET settings = $1 WHERE id = $2",
        {"tracking": {"anonymize_ip": False}},
        company_id,
    )
    token = CODEC.make(Token(TokenKind.OPEN, 3, company_id, sent_at=LONG_AGO))
    for trusted in (False, True):
        writer = EventWriter(pool, batch_size=10)
        app = create_app(
            db=pool, codec=CODEC, links=Links(BASE), writer=writer, trust_forwarded=trusted
        )
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            for forwarded in ("198.51.100.9, 10.0.0.1", "garbage'); DROP TABLE x;--"):
                response = await client.get(f"/o/{token}", headers={"X-Forwarded-For": forwarded})
                assert response.status_code == 200
        assert await writer.flush()
    ips = [r["ip"] for r in await pool.fetch("SELECT ip FROM tracking_events ORDER BY id")]
    assert [str(ip) if ip else None for ip in ips] == [
        "192.0.2.1",
        "192.0.2.1",
        "198.51.100.9",
        None,
    ]
