"""Campaigns moving on their own (issue 10): scheduled campaigns fire, sends are enqueued in
chunks, finished sends become `sent`.

Every control API process of every daemon runs one runner; the database makes each step happen
once: a due scheduled campaign is locked with FOR UPDATE SKIP LOCKED and moved to sending (its
version frozen) in the same transaction; an enqueuing version likewise, per chunk. A daemon
that was down catches up at start: what came due meanwhile is simply due. The send endpoint
NOTIFYs `sendmill_campaigns`, so a send starts within milliseconds, not at the next poll.
Every few seconds one process publishes `email_campaign.progress` for each campaign being
sent (the WebSocket's clients of every daemon get it through NOTIFY).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from control.audience import requires_consent
from control.campaign_lifecycle import progress
from control.campaign_send import CHUNK, enqueue_chunk, freeze
from control.events import publish
from mta.queries import Queries

log = logging.getLogger("sendmill.campaigns")
SQL = Queries("control")
CHANNEL = "sendmill_campaigns"
PROGRESS_EVENT = "email_campaign.progress"
PROGRESS_INTERVAL = 3.0  # seconds between progress events of a campaign being sent
PROGRESS_LOCK = 0x53_4D_43_50  # "SMCP": one process of one daemon publishes each round
MAX_CHUNKS_PER_ROUND = 1000  # bounds a round; the next round goes on where it stopped


async def fire_due(db: asyncpg.Pool) -> int:
    """Move every due scheduled campaign to sending, each with its frozen version."""
    fired = 0
    while True:
        async with db.acquire() as conn, conn.transaction():
            campaign = await conn.fetchrow(SQL["lock-due-scheduled-campaign"])
            if campaign is None:
                return fired
            settings = await conn.fetchval(SQL["company-settings"], campaign["company_id"])
            await freeze(
                conn, campaign["id"], campaign["company_id"], requires_consent(settings or {})
            )
            row = await conn.fetchrow(
                SQL["start-campaign-sending"], campaign["id"], campaign["company_id"]
            )
            await publish(conn, row["company_id"], "email_campaign.sent", _summary(row))
        fired += 1


async def finish_sent(db: asyncpg.Pool) -> int:
    async with db.acquire() as conn, conn.transaction():
        rows = await conn.fetch(SQL["finish-sent-campaigns"])
        for row in rows:
            await publish(conn, row["company_id"], "email_campaign.completed", _summary(row))
    return len(rows)


async def publish_progress(db: asyncpg.Pool) -> int:
    """An `email_campaign.progress` event per campaign being sent (one process does it)."""
    async with db.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PROGRESS_LOCK):
            return 0
        campaigns = await conn.fetch(SQL["campaigns-in-flight"])
        for campaign in campaigns:
            data = await progress(conn, campaign)
            await publish(conn, campaign["company_id"], PROGRESS_EVENT, data)
    return len(campaigns)


def _summary(row: asyncpg.Record) -> dict:
    return {
        "id": row["id"],
        "campaign_code": row["campaign_code"],
        "campaign_name": row["campaign_name"],
        "campaign_status": row["campaign_status"],
        "total_recipients": row["total_recipients"],
    }


class CampaignRunner:
    """One process's share of the campaign work, every `interval` seconds or when woken."""

    def __init__(
        self,
        db: asyncpg.Pool,
        max_age: float,
        interval: float = 1.0,
        listen_url: str | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self._chunk = chunk
        self._db = db
        self._max_age = max_age
        self._interval = interval
        self._listen_url = listen_url
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._on_notify = lambda *_: self._wake.set()
        self._next_progress = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="campaign-runner")

    async def _listen(self) -> None:
        try:
            if self._listen_url:
                self._listener = await asyncpg.connect(self._listen_url)
            else:
                self._listener = await self._db.acquire()  # type: ignore[assignment]
            assert self._listener is not None
            await self._listener.add_listener(CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError):
            log.warning("campaigns: LISTEN unavailable, polling only", exc_info=True)

    async def round(self) -> None:
        await fire_due(self._db)
        # Each chunk is its own transaction; other work of this process runs in between.
        for _ in range(MAX_CHUNKS_PER_ROUND):
            if not await enqueue_chunk(self._db, self._max_age, self._chunk):
                break
        await finish_sent(self._db)
        now = time.monotonic()
        if now >= self._next_progress:
            self._next_progress = now + PROGRESS_INTERVAL
            await publish_progress(self._db)

    async def _run(self) -> None:
        await self._listen()
        while True:
            try:
                await self.round()
            except Exception as exc:  # one failed round must not end the runner
                log.warning("campaign runner round failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(CHANNEL, self._on_notify)
            if self._listen_url:
                with contextlib.suppress(Exception):
                    await self._listener.close()
            else:
                with contextlib.suppress(Exception):
                    await self._db.release(self._listener)  # type: ignore[arg-type]
            self._listener = None
