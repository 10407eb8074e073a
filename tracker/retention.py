"""Events retention: tracking events older than `[tracker] events_retention` are deleted.

The daemon runs `EventsRetention` in the background: once at start, then every hour. Each run
deletes in batches of `batch_size` rows, one short transaction each with a pause between them,
so the event writer's COPY and the analytics queries are never held up behind one huge
DELETE; a run stops after `max_batches` and the next run goes on. Several daemons sharing a
database take turns (an advisory lock: whoever does not get it skips the run).

Campaign counts are computed from the events themselves (the tracking_campaign_counts view):
no aggregate is kept beside them, because unique recipients cannot be added up honestly once
part of the rows is gone. So a campaign's events older than the retention period leave its
counts and rates; the default (400 days) keeps more than a year for comparisons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

import asyncpg

from mta.queries import Queries
from tracker import metrics

log = logging.getLogger("sendmill.tracker")
SQL = Queries("tracker")
PURGE_INTERVAL = 3600.0  # seconds between runs


class EventsRetention:
    """Deletes events older than `keep` seconds (0: keeps everything)."""

    def __init__(
        self,
        db: asyncpg.Pool,
        keep: float,
        *,
        batch_size: int = 5000,
        max_batches: int = 2000,
        pause: float = 0.05,
        interval: float = PURGE_INTERVAL,
    ) -> None:
        self.db = db
        self.keep = keep
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.pause = pause
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def purge(self, now: float | None = None) -> int:
        """One run: the number of events deleted."""
        if self.keep <= 0:
            return 0
        cutoff = datetime.fromtimestamp((now or time.time()) - self.keep, UTC)
        deleted = 0
        for _ in range(self.max_batches):
            async with self.db.acquire() as conn, conn.transaction():
                if not await conn.fetchval(SQL["try-purge-lock"]):
                    break  # another daemon is purging
                status = await conn.execute(SQL["purge-events"], cutoff, self.batch_size)
            count = int(status.split()[-1])  # "DELETE n"
            deleted += count
            metrics.EVENTS_PURGED.inc(count)
            if count < self.batch_size:
                break
            await asyncio.sleep(self.pause)
        if deleted:
            log.info("tracker: deleted %d events older than %s", deleted, cutoff.isoformat())
        return deleted

    def start(self) -> None:
        if self.keep > 0:
            self._task = asyncio.create_task(self._run(), name="tracker-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.purge()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("tracker: purging old events failed (%s); next run later", exc)
            await asyncio.sleep(self.interval)
