"""Mail received for the bounce domain: stored raw for the bounce processor (bounce/)."""

from __future__ import annotations

import asyncpg

from mta.queries import Queries

SQL = Queries("mta")


async def store_inbound(
    db: asyncpg.Pool | asyncpg.Connection,
    recipient_id: int | None,
    envelope_from: str,
    envelope_to: str,
    body: bytes,
) -> int:
    """Commit one inbound message; returns its id. Called before the 250 is sent."""
    return await db.fetchval(
        SQL["store-inbound-message"], recipient_id, envelope_from, envelope_to, body
    )
