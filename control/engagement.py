"""Contact engagement kept current: opens and clicks folded from the tracker's events into
per-contact rows (control/schema/0020) that segment criteria read (control/segments.py).

Each round reads the events past the last one folded in, in chunks of ids, and upserts the
latest open and click times per (contact, campaign) and per contact, people and machines
apart. Tracker processes write in concurrent COPY batches, so an event may commit after one
with a higher id has been read: every round reads again the last `MARGIN` ids before the
watermark. Folding is idempotent (the upserts keep the greatest time), so reading an event
twice changes nothing, and never double counts.

Every control API process runs the loop; an advisory lock lets one of them (of any daemon on
the database) do each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg

from mta.queries import Queries

log = logging.getLogger("sendmill.control.engagement")
SQL = Queries("control")
LOCK_KEY = 0x53_4D_45_4E  # "SMEN": one catch-up at a time across processes and daemons
# Tracker batches are 500 events (tracker.batch_size) per process; a few in flight at once
# is far under this many ids.
MARGIN = 10_000
CHUNK = 50_000  # event ids per statement: one short transaction each
MAX_CHUNKS = 40  # per round, so a backlog of millions is worked through over several rounds


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What one round did: events read up to `last_event_id`, (contact, campaign) pairs
    touched; `behind` when the round stopped at MAX_CHUNKS with events left."""

    last_event_id: int
    pairs: int
    behind: bool


async def catch_up(
    db: asyncpg.Pool, chunk: int = CHUNK, max_chunks: int = MAX_CHUNKS
) -> CatchUp | None:
    """Fold in the events not yet read (and the margin before them); None when another
    process holds the round."""
    async with db.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            return None
        try:
            return await _fold(db, chunk, max_chunks)
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _fold(db: asyncpg.Pool, chunk: int, max_chunks: int) -> CatchUp:
    row = await db.fetchrow(SQL["engagement-progress"])
    start = max(0, row["last_event_id"] - MARGIN)
    newest = row["newest_event_id"]
    pairs = 0
    done = start
    for _ in range(max_chunks):
        if done >= newest:
            break
        upto = min(newest, done + chunk)
        async with db.acquire() as conn, conn.transaction():
            folded = await conn.fetchrow(SQL["engagement-fold"], done, upto)
            await conn.execute(SQL["engagement-advance"], upto)
        pairs += folded["pairs"]
        done = upto
    return CatchUp(max(done, row["last_event_id"]), pairs, done < newest)


class EngagementRollup:
    """`catch_up` every `interval` seconds until stopped."""

    def __init__(self, db: asyncpg.Pool, interval: float) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="control-engagement")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await catch_up(self._db)
            except Exception as exc:  # one failed round must not end the loop
                log.warning("contact engagement catch-up failed: %s", exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
