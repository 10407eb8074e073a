"""Connection limits shared through the database, so a site's `connections` limit holds across
every delivery process and every daemon on one database, not per process.

Each open connection holds one numbered slot of its site under a short lease that its node
renews while running; slots of a killed node come free when the lease runs out. Connections are
long-lived (reused for many messages), so a round trip per connection costs little.

A slot belongs to the connection that took it: the node remembers which slots its open
connections hold, renews only those, and frees any other slot the database says it holds (a
release lost to a database outage, a take whose answer never arrived). A slot cannot outlive its
connection by more than one renewal period, whatever the database did meanwhile (issue 11).
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
# A slot taken this recently is never freed as unknown: its take may still be on its way back.
TAKE_GRACE = 5.0


class ConnectionSlots:
    """The shared connection slots one node takes for its sites."""

    def __init__(
        self, db: asyncpg.Pool, node: str, lease: float = SLOT_LEASE, take_grace: float = TAKE_GRACE
    ) -> None:
        self._db = db
        self.node = node
        self.lease = lease
        self._take_grace = take_grace
        # Set when the database may hold slots no connection owns: renew soon, not in lease/3.
        self.stale = asyncio.Event()
        self._live: set[tuple[str, int]] = set()  # (site, slot) of this node's open connections

    @property
    def live(self) -> frozenset[tuple[str, int]]:
        return frozenset(self._live)

    async def take(self, site: str, limit: int) -> int | None:
        """A free slot of `site` (out of `limit`), or None when all are in use."""
        try:
            row = await self._db.fetchrow(
                SQL["take-connection-slot"], site, limit, self.node, self.lease
            )
        except BaseException:
            self.stale.set()  # the slot may have been taken without our hearing of it
            raise
        if row is None:
            return None
        self._live.add((site, row["slot"]))
        return row["slot"]

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
        """The connection ended. It no longer holds the slot from this moment, whether or not
        the database hears of it now: if not, the next `renew` frees it."""
        self._live.discard((site, slot))
        try:
            await self._db.execute(SQL["release-connection-slot"], site, slot, self.node)
        except BaseException:
            self.stale.set()
            raise

    async def renew(self) -> None:
        """Extend the slots of open connections and free every other slot of this node."""
        sites = [site for site, _ in self._live]
        slots = [slot for _, slot in self._live]
        await self._db.execute(
            SQL["renew-connection-slots"], self.node, self.lease, sites, slots, self._take_grace
        )
        self.stale.clear()

    async def release_all(self) -> None:
        self._live.clear()
        await self._db.execute(SQL["release-node-connection-slots"], self.node)
