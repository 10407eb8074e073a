"""Unsubscriptions stop marketing mail, at enqueue and at delivery, and never transactional mail."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from mta import queue, tenants, unsubscriptions
from mta.queue import Submission
from tests.support.fixtures_daemon import TEST_DOMAIN


def _submission(
    company_id: int, recipients: list[str], category: str = "marketing", **kw: object
) -> Submission:
    return Submission(
        company_id=company_id,
        credential_id=None,
        mail_from=f"news@{TEST_DOMAIN}",
        from_domain=TEST_DOMAIN,
        recipients=recipients,
        body=f"From: news@{TEST_DOMAIN}\r\nSubject: news\r\n\r\nhello\r\n".encode(),
        category=category,
        **kw,
    )


async def test_unsubscribe_is_idempotent_and_can_be_lifted(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    assert await unsubscriptions.unsubscribe(pool, company, "Ann@X.test", 7, source="page")
    assert not await unsubscriptions.unsubscribe(pool, company, "ann@x.test", 7, source="api")
    assert await unsubscriptions.is_unsubscribed(pool, company, "ann@x.test", 7)
    assert not await unsubscriptions.is_unsubscribed(pool, company, "ann@x.test", 8)
    [entry] = await unsubscriptions.unsubscribed_lists(pool, company, "ann@x.test")
    assert (entry.list_id, entry.source) == (7, "page")  # the first record is the evidence kept
    assert await unsubscriptions.resubscribe(pool, company, "ann@x.test", 7)
    assert not await unsubscriptions.is_unsubscribed(pool, company, "ann@x.test", 7)


async def test_marketing_mail_to_unsubscribed_addresses_is_suppressed_at_enqueue(
    pool: asyncpg.Pool,
) -> None:
    company = await tenants.ensure_company(pool, "acme")
    other = await tenants.ensure_company(pool, "other")
    await unsubscriptions.unsubscribe(pool, company, "all@x.test", source="one-click")
    await unsubscriptions.unsubscribe(pool, company, "list5@x.test", 5, source="page")
    await unsubscriptions.unsubscribe(pool, other, "keep@x.test", source="page")
    targets = ["all@x.test", "list5@x.test", "keep@x.test"]

    on_list_5 = await queue.enqueue(pool, _submission(company, targets, list_id=5), 3600)
    assert [r.state for r in on_list_5] == ["suppressed", "suppressed", "queued"]
    on_list_6 = await queue.enqueue(pool, _submission(company, targets, list_id=6), 3600)
    assert [r.state for r in on_list_6] == ["suppressed", "queued", "queued"]
    receipt = await queue.enqueue(pool, _submission(company, targets, "transactional"), 3600)
    assert [r.state for r in receipt] == ["queued", "queued", "queued"]
    reply = await pool.fetchval("SELECT last_reply FROM recipients WHERE id = $1", on_list_5[0].id)
    assert reply == "suppressed: unsubscribed"


async def test_an_unsubscribe_after_enqueue_stops_the_queued_marketing_mail(
    daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    db = daemon.db
    company = await tenants.ensure_company(db, "acme")
    people = ["stays@dest.test", "leaves@dest.test"]
    news = await queue.enqueue(db, _submission(company, people, list_id=3, hold=True), 3600)
    receipt = await queue.enqueue(
        db, _submission(company, people, "transactional", hold=True), 3600
    )

    await unsubscriptions.unsubscribe(db, company, "leaves@dest.test", source="one-click")
    await queue.operate(db, "release", company_id=company)

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = dict(await db.fetch("SELECT id, state::text FROM recipients"))
        if all(s in ("delivered", "suppressed") for s in states.values()):
            break
        await asyncio.sleep(0.1)
    assert states[news[0].id] == "delivered"
    assert states[news[1].id] == "suppressed"
    assert states[receipt[0].id] == states[receipt[1].id] == "delivered"
    delivered_to = sorted(m.rcpt_tos[0] for m in mx.messages)
    assert delivered_to == ["leaves@dest.test", "stays@dest.test", "stays@dest.test"]
