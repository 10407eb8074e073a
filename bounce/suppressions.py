"""Reviewing and lifting suppressions (the CLI's `sendmill suppressions list|lift`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mta.queries import Queries

SQL = Queries("bounce")


@dataclass(frozen=True, slots=True)
class Suppression:
    company: str
    address: str
    reason: str
    evidence: str
    created_at: datetime


async def list_suppressions(
    db: asyncpg.Pool | asyncpg.Connection,
    company: str | None = None,
    address: str | None = None,
    limit: int = 100,
) -> list[Suppression]:
    rows = await db.fetch(SQL["list-suppressions"], company, address, limit)
    return [Suppression(**dict(r)) for r in rows]


async def lift(db: asyncpg.Pool | asyncpg.Connection, company: str, address: str) -> bool:
    """Remove a suppression; True when there was one. The address may be sent to again."""
    return await db.fetchrow(SQL["lift-suppression"], company, address) is not None
