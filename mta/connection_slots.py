"""Connection limits shared through the database, so a site's `connections` limit holds across
every delivery process and every daemon on one database, not per process.

Each open connection holds one numbered slot of its site under a short lease that its node
renews while running; slots of a killed node come free when the lease runs out. Connections are
long-lived (reused for many messages), so a round trip per connection costs little.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from mta import metrics
from mta.queries import Queries

SQL = Queries("mta")

# Slot leases are short so a dead node's connections are given back quickly; the engine renews
# its slots every third of this.
SLOT_LEASE = 60.0
# While all slots are taken, ask again after 0.1 s, backing off to once a second.
RETRY_FIRST, RETRY_MAX = 0.1, 1.0


class ConnectionSlots:
    """The shared connection slots one node takes for its sites."""

    def __init__(self, db: asyncpg.Pool, node: str, lease: float = SLOT_LEASE) -> None:
        self._db = db
        self.node = node
        self.lease = lease

    async def take(self, site: str, limit: int) -> int | None:
        """A free slot of `site` (out of `limit`), or None when all are in use."""
        row = await self._db.fetchrow(
            SQL["take-connection-slot"], site, limit, self.node, self.lease
        )
        return None if row is None else row["slot"]

    async def wait_for(
        self, site: str, limit: Callable[[], int], wanted: Callable[[], bool]
    ) -> int | None:
        """Wait for a slot while `wanted()` holds (there is still work); None when it no longer
        does. `limit` is read on every try: a slowed-down site has fewer connections."""
        delay = RETRY_FIRST
        while True:
            slot = await self.take(site, limit())
            if slot is not None:
                return slot
            if not wanted():
                return None
            metrics.THROTTLE_WAITS.labels("shared_connections").inc()
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)

    async def release(self, site: str, slot: int) -> None:
        await self._db.execute(SQL["release-connection-slot"], site, slot, self.node)

    async def renew(self) -> None:
        await self._db.execute(SQL["renew-connection-slots"], self.node, self.lease)

    async def release_all(self) -> None:
        await self._db.execute(SQL["release-node-connection-slots"], self.node)
