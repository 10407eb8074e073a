"""The queue on a real PostgreSQL: one row per recipient, leases, fairness, outcomes."""

import asyncio

import asyncpg

from mta import queue, tenants
from mta.queue import Outcome, RecipientState, Submission


def _submission(company_id: int, recipients: list[str], priority: int = 0) -> Submission:
    return Submission(
        company_id=company_id,
        credential_id=None,
        mail_from="app@example.test",
        from_domain="example.test",
        recipients=recipients,
        body=b"From: app@example.test\r\nSubject: hi\r\n\r\nhello\r\n",
        priority=priority,
    )


async def test_a_message_is_stored_once_with_one_row_per_recipient(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    rows = await queue.enqueue(
        pool, _submission(company, ["a@x.test", "b@Y.test", "c@x.test"]), 3600
    )
    assert [r.recipient for r in rows] == ["a@x.test", "b@Y.test", "c@x.test"]
    assert len({r.message_id for r in rows}) == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    domains = await pool.fetch("SELECT domain FROM recipients ORDER BY id")
    assert [d["domain"] for d in domains] == ["x.test", "y.test", "x.test"]


async def test_suppressed_recipients_are_marked_at_enqueue(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    await pool.execute(
        "INSERT INTO suppressions (company_id, address, reason) VALUES ($1, $2, 'userunknown')",
        company,
        "gone@x.test",
    )
    rows = await queue.enqueue(pool, _submission(company, ["Gone@x.test", "ok@x.test"]), 3600)
    assert [r.state for r in rows] == ["suppressed", "queued"]
    claimed = await queue.claim(pool, "n1", 10, 60)
    assert [c.recipient for c in claimed] == ["ok@x.test"]


async def test_two_nodes_claiming_concurrently_never_get_the_same_row(
    pool: asyncpg.Pool,
) -> None:
    company = await tenants.ensure_company(pool, "acme")
    for i in range(20):
        await queue.enqueue(pool, _submission(company, [f"r{i}-{j}@x.test" for j in range(10)]), 60)
    results = await asyncio.gather(*(queue.claim(pool, f"node{i % 2}", 25, 60) for i in range(12)))
    ids = [c.id for batch in results for c in batch]
    assert len(ids) == 200
    assert len(set(ids)) == 200


async def test_claims_are_fair_between_companies_and_transactional_first(
    pool: asyncpg.Pool,
) -> None:
    big = await tenants.ensure_company(pool, "bulk-sender")
    small = await tenants.ensure_company(pool, "shop")
    await queue.enqueue(pool, _submission(big, [f"c{i}@x.test" for i in range(500)], 1), 60)
    await queue.enqueue(pool, _submission(small, ["order@y.test"]), 60)
    await queue.enqueue(pool, _submission(big, ["reset@x.test"]), 60)
    claimed = await queue.claim(pool, "n1", 20, 60, per_company=10)
    recipients = [c.recipient for c in claimed]
    assert "order@y.test" in recipients  # not stuck behind 500 campaign rows
    assert "reset@x.test" in recipients  # the bulk sender's own transactional mail first
    assert sum(1 for c in claimed if c.company_id == big) == 10


async def test_outcomes_are_recorded_with_every_attempt(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    await queue.enqueue(pool, _submission(company, ["a@x.test", "b@x.test"]), 3600)
    a, b = await queue.claim(pool, "n1", 10, 60)
    await queue.record_outcomes(
        pool,
        "n1",
        [
            Outcome(a.id, RecipientState.DELIVERED, "250 2.0.0 ok", 250, "mx.x.test:25"),
            Outcome(b.id, RecipientState.DEFERRED, "451 4.3.0 later", 451, "mx.x.test:25", 300),
        ],
    )
    status = await queue.recipient_status(pool, b.id, company)
    assert status["state"] == "deferred" and status["attempts"] == 1
    assert status["attempts_log"][0]["code"] == 451
    assert await queue.claim(pool, "n1", 10, 60) == []  # b is not due for 5 minutes
    assert (await queue.recipient_status(pool, a.id, company))["state"] == "delivered"
    assert await queue.recipient_status(pool, a.id, company + 1) is None  # other tenant


async def test_an_expired_lease_is_retaken_and_the_old_node_cannot_overwrite_it(
    pool: asyncpg.Pool,
) -> None:
    company = await tenants.ensure_company(pool, "acme")
    await queue.enqueue(pool, _submission(company, ["a@x.test"]), 3600)
    (row,) = await queue.claim(pool, "dead-node", 10, lease=0.05)
    await asyncio.sleep(0.1)
    assert await queue.retake_expired_leases(pool) == 1
    (again,) = await queue.claim(pool, "live-node", 10, 60)
    assert again.id == row.id
    await queue.record_outcomes(
        pool, "dead-node", [Outcome(row.id, RecipientState.BOUNCED, "550 late", 550)]
    )
    assert (await queue.recipient_status(pool, row.id, company))["state"] == "sending"


async def test_operator_hold_release_retry_and_delete(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    await queue.enqueue(pool, _submission(company, ["a@x.test", "b@y.test"]), 3600)
    assert await queue.operate(pool, "hold", domain="x.test") == 1
    claimed = await queue.claim(pool, "n1", 10, 60)
    assert [c.recipient for c in claimed] == ["b@y.test"]
    assert await queue.operate(pool, "release", domain="x.test") == 1
    assert await queue.operate(pool, "delete", domain="x.test") == 1
    totals = await queue.state_totals(pool)
    assert totals == {"bounced": 1, "sending": 1}


async def test_operator_actions_run_in_batches_and_report_progress(pool: asyncpg.Pool) -> None:
    company = await tenants.ensure_company(pool, "acme")
    await queue.enqueue(pool, _submission(company, [f"r{i}@x.test" for i in range(25)]), 3600)
    await pool.execute("UPDATE recipients SET state = 'deferred', next_attempt_at = now() + '1h'")
    seen: list[tuple[int, int]] = []
    changed = await queue.operate(
        pool, "retry", domain="x.test", batch=10, progress=lambda d, t: seen.append((d, t))
    )
    assert changed == 25
    assert seen == [(10, 25), (20, 25), (25, 25)]
    due = await pool.fetchval("SELECT count(*) FROM recipients WHERE next_attempt_at <= now()")
    assert due == 25
    # Nothing left to retry: a second run changes nothing and ends at once.
    assert await queue.operate(pool, "retry", domain="x.test", batch=10) == 0
    assert await queue.operate(pool, "hold", company_id=company, batch=7) == 25
    assert await queue.state_totals(pool) == {"held": 25}
