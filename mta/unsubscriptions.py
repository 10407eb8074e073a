"""Unsubscriptions: people who asked a company for no more marketing mail, from one list or all.

The tracker (one-click and page unsubscribes), the bounce processor (complaints, `mailto:`
requests) and the control API write here; the queue reads it so that marketing mail to an
unsubscribed address is marked `suppressed` and never sent, at enqueue and again at delivery.
Transactional mail is not affected: that is what the suppression list is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mta.queries import Queries

SQL = Queries("mta")

ALL_LISTS = 0


@dataclass(frozen=True, slots=True)
class Unsubscription:
    list_id: int  # ALL_LISTS for every list of the company
    source: str
    evidence: str
    created_at: datetime


async def unsubscribe(
    db: asyncpg.Pool | asyncpg.Connection,
    company_id: int,
    address: str,
    list_id: int = ALL_LISTS,
    *,
    source: str,
    evidence: str = "",
) -> bool:
    """Record the unsubscription; True when it is new, False when it was already recorded."""
    row = await db.fetchrow(SQL["unsubscribe"], company_id, address, list_id, source, evidence)
    return row is not None


async def resubscribe(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, address: str, list_id: int = ALL_LISTS
) -> bool:
    """Lift an unsubscription (a new, recorded opt-in); True when there was one."""
    return await db.fetchrow(SQL["resubscribe"], company_id, address, list_id) is not None


async def unsubscribed_lists(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, address: str
) -> list[Unsubscription]:
    rows = await db.fetch(SQL["unsubscribed-lists"], company_id, address)
    return [Unsubscription(**dict(r)) for r in rows]


async def is_unsubscribed(
    db: asyncpg.Pool | asyncpg.Connection,
    company_id: int,
    address: str,
    list_id: int | None = None,
) -> bool:
    """Whether marketing mail for `list_id` (None: any list) must not go to `address`."""
    lists = {u.list_id for u in await unsubscribed_lists(db, company_id, address)}
    return ALL_LISTS in lists or (list_id is not None and list_id in lists)
