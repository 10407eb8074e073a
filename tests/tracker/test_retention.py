"""Events retention: old tracking events are deleted in batches, by the daemon on its own, and
leave the campaign counts computed from them (documented in tracker/retention.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mta import tenants
from mta.config import ConfigError, build_config
from tracker.events import campaign_counts
from tracker.retention import EventsRetention

DAY = 86400.0


async def _events(db: asyncpg.Pool, company_id: int, days_ago: float, count: int) -> None:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    await db.copy_records_to_table(
        "tracking_events",
        records=[("open", at, company_id, n + 1, 5) for n in range(count)],
        columns=("kind", "at", "company_id", "recipient_id", "campaign_id"),
    )


async def test_events_older_than_the_retention_are_deleted_in_batches(pool: asyncpg.Pool):
    company = await tenants.ensure_company(pool, "acme")
    await _events(pool, company, 500, 23)
    await _events(pool, company, 399, 4)  # inside a 400-day retention
    retention = EventsRetention(pool, 400 * DAY, batch_size=5, pause=0)
    assert await retention.purge() == 23  # five batches of five, the last one short
    assert await pool.fetchval("SELECT count(*) FROM tracking_events") == 4
    assert (await campaign_counts(pool, company, 5))["open"].total == 4
    assert await retention.purge() == 0
    assert await EventsRetention(pool, 0).purge() == 0  # 0: keep everything
    assert await pool.fetchval("SELECT count(*) FROM tracking_events") == 4


async def test_a_run_stops_after_its_batch_budget_and_the_next_goes_on(pool: asyncpg.Pool):
    company = await tenants.ensure_company(pool, "acme")
    await _events(pool, company, 500, 12)
    retention = EventsRetention(pool, 400 * DAY, batch_size=5, max_batches=2, pause=0)
    assert await retention.purge() == 10
    assert await retention.purge() == 2


async def test_two_daemons_purging_at_once_take_turns(pool: asyncpg.Pool):
    company = await tenants.ensure_company(pool, "acme")
    await _events(pool, company, 500, 30)
    runs = [EventsRetention(pool, 400 * DAY, batch_size=3, pause=0.01) for _ in range(2)]
    deleted = await asyncio.gather(*(r.purge() for r in runs))
    assert sum(deleted) == 30
    assert await pool.fetchval("SELECT count(*) FROM tracking_events") == 0


async def test_the_daemon_purges_old_events_by_itself(pool: asyncpg.Pool, daemon_factory):
    company = await tenants.ensure_company(pool, "acme")
    await _events(pool, company, 31, 3)
    await _events(pool, company, 29, 2)
    await daemon_factory(tracker={"events_retention": "30d"})  # a run at start, then hourly
    deadline = time.monotonic() + 10
    while await pool.fetchval("SELECT count(*) FROM tracking_events") > 2:
        assert time.monotonic() < deadline, "old events still there"
        await asyncio.sleep(0.1)
    assert await pool.fetchval("SELECT count(*) FROM tracking_events") == 2


def test_the_retention_is_a_duration_and_zero_keeps_everything() -> None:
    assert build_config({}).tracker.events_retention == 400 * DAY
    assert build_config({"tracker": {"events_retention": "90d"}}).tracker.events_retention == (
        90 * DAY
    )
    assert build_config({"tracker": {"events_retention": 0}}).tracker.events_retention == 0
    with pytest.raises(ConfigError, match="events_retention"):
        build_config({"tracker": {"events_retention": "soon"}})
