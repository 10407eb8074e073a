"""When each API key was last used (`api_keys.last_used_at`), without a write per request.

Writing the time on every request would turn every read made with a key into a write. Each
process instead remembers when it last wrote a key's time and writes it again only once
`every` seconds (a minute) have passed; the UPDATE itself moves only a value older than that,
so several daemons sharing the database write a key about once a minute between them. The
write runs in the background: a request never waits for it. The stored time is therefore the
key's last use to within a minute, which is what an operator deciding whether a key is still
in use needs.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from mta.queries import Queries

SQL = Queries("control")
log = logging.getLogger("sendmill.control.key_usage")
FLUSH_EVERY = 60.0


class KeyUsage:
    """Records uses of API keys; `used()` is cheap and never blocks the request."""

    def __init__(self, db: asyncpg.Pool, every: float = FLUSH_EVERY) -> None:
        self._db = db
        self.every = every
        self._written: dict[int, float] = {}  # key id -> monotonic time of our last write
        self._writes: set[asyncio.Task[None]] = set()

    def used(self, key_id: int, now: float | None = None) -> None:
        """Note a use of key `key_id`; writes it when this process has not for `every` s."""
        now = time.monotonic() if now is None else now
        last = self._written.get(key_id)
        if last is not None and now - last < self.every:
            return
        self._written[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write(key_id))
        self._writes.add(task)  # held: the loop keeps only weak references to tasks
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """Wait for the writes in flight (shutdown, tests)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write(self, key_id: int) -> None:
        try:
            await self._db.execute(SQL["touch-api-key"], key_id, self.every)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            # Only bookkeeping is lost: the next use writes it again.
            self._written.pop(key_id, None)
            log.warning("could not record the use of API key %s: %s", key_id, exc)
