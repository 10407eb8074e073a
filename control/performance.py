"""Campaign performance kept current: the counters of campaigns in flight recomputed from the
mail queue and the tracker's events every few seconds, and an
`email_campaign.performance_update` event published to the company for each campaign whose
counters moved (blueprint §9.3).

Every control API process runs the loop; a PostgreSQL advisory lock lets one of them (of any
daemon on the database) do each round, so the work is done once however many serve the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from control import metrics
from control.events import publish
from control.routes.campaigns import rates
from mta.queries import Queries

log = logging.getLogger("sendmill.control.performance")
SQL = Queries("control")
EVENT = "email_campaign.performance_update"
LOCK_KEY = 0x53_4D_50_45  # "SMPE": one rollup at a time across processes and daemons
# Sent campaigns keep being counted this long (late opens, clicks and bounces), and any
# campaign with a tracking event this recent.
SENT_WINDOW = 7 * 86400.0
RECENT_EVENTS = 3600.0


async def roll_up(db: asyncpg.Pool) -> int:
    """One round: recompute, publish what changed; the number of campaigns updated (0 also
    when another process holds the round)."""
    async with db.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return 0
        rows = await conn.fetch(SQL["performance-rollup"], SENT_WINDOW, RECENT_EVENTS)
        for row in rows:
            await publish(conn, row["company_id"], EVENT, performance_event(row))
    metrics.CAMPAIGNS_ROLLED_UP.inc(len(rows))
    return len(rows)


def performance_event(row: Any) -> dict[str, Any]:
    """The event's data: who the campaign is, its counters and rates."""
    return {
        "campaign_code": row["campaign_code"],
        "campaign_name": row["campaign_name"],
        "campaign_status": row["campaign_status"],
        **rates(row),
    }


class PerformanceRollup:
    """`roll_up` every `interval` seconds until stopped."""

    def __init__(self, db: asyncpg.Pool, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="control-performance")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await roll_up(self._db)
            except Exception as exc:
                log.warning("campaign performance rollup failed: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
