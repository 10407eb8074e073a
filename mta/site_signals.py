"""Site slow-downs shared by every delivery process and daemon on the database.

A delivery engine slows a site down by itself when the site answers 421 or a run of 4xx. Other
evidence arrives elsewhere — a DSN processed in the main process says a site refused us for
reputation or policy — and must reach the engines that deliver there, in other processes and
other daemons too. It travels as a PostgreSQL notification, which every engine LISTENs for on
the connection it already keeps for new-mail wake-ups.
"""

from __future__ import annotations

import asyncpg

CHANNEL = "sendmill_site_slowdown"


async def announce_slowdown(db: asyncpg.Pool | asyncpg.Connection, domain: str) -> None:
    """Ask every delivery engine to slow down the site that receives `domain`."""
    await db.execute("SELECT pg_notify($1, $2)", CHANNEL, domain.lower())
