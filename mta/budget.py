"""A site's rate budget shared through the database, so a limit such as "3000/m" holds across
every delivery process and every daemon on one database, not per process.

Tokens are taken from the site's row in small batches (a few per round trip) and spent locally;
a batch is small enough that tokens parked in one process never starve another for long.
"""

from __future__ import annotations

import asyncpg

from mta.queries import Queries
from mta.throttle import Rate

SQL = Queries("mta")


class SharedBudget:
    """The shared token bucket of one site."""

    def __init__(self, db: asyncpg.Pool, site: str, rate: Rate) -> None:
        self._db = db
        self.site = site
        self.rate = rate
        self.capacity = max(1.0, rate.per_second)  # about one second of burst
        # Tokens fetched per round trip: a tenth of a second's worth, at least 1, at most 20.
        self._batch = int(min(20, max(1, rate.per_second / 10)))
        self._local = 0

    async def take(self) -> float:
        """0.0 when a message may go now (one token spent), else seconds to wait."""
        if self._local > 0:
            self._local -= 1
            return 0.0
        row = await self._db.fetchrow(
            SQL["take-site-tokens"], self.site, self.rate.per_second, self.capacity, self._batch
        )
        granted, left = int(row["last_granted"]), float(row["tokens"])
        if granted > 0:
            self._local = granted - 1
            return 0.0
        return max(0.01, (1.0 - left) / self.rate.per_second)
