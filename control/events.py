"""Company-scoped events for WebSocket clients, carried by PostgreSQL NOTIFY.

Writes publish inside their transaction (`pg_notify`, see control/routing.py), so an event is
seen only once its change is committed, by every daemon on the database, and later by the
campaign engine's performance updates too. One connection per daemon LISTENs and fans each
event out to the subscribers of that company only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from control.routing import EVENTS_CHANNEL

log = logging.getLogger("sendmill.control.events")
QUEUE_SIZE = 256  # a client this far behind loses events rather than memory


class EventHub:
    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._conn: Any = None
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._conn is None:
                conn = await self._db.acquire()
                await conn.add_listener(EVENTS_CHANNEL, self._on_notify)
                self._conn = conn

    async def stop(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(EVENTS_CHANNEL, self._on_notify)
                await self._db.release(conn)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
            company_id = int(event.pop("company_id"))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed event %r", payload[:200])
            return
        for queue in self._subscribers.get(company_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, company_id: int) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving the events of `company_id` while the context is open."""
        await self.start()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(company_id, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._subscribers.get(company_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[company_id]


async def publish(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, event: str, data: Any
) -> None:
    """Publish from outside an API request (the campaign engine, tests)."""
    from control.responses import dumps

    payload = dumps({"company_id": company_id, "event": event, "data": data}).decode()
    await db.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, payload)
