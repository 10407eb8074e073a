"""Erasure (GDPR Art. 17) in the mail path: an erased address is never mailed again, although
only its hash is kept.

The control API erases a contact's personal data; before it does, it puts the address on the
hashed suppression list here. The queue checks that list at enqueue and at delivery for every
kind of mail, so neither a campaign nor an application's transactional mail reaches the person.
"""

from __future__ import annotations

import asyncpg

from mta.queries import Queries

SQL = Queries("mta")


async def suppress_erased_address(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, address: str, reason: str = "erased"
) -> None:
    """Keep `address` (case-insensitive) from ever being mailed by the company, as a hash."""
    await db.execute(SQL["suppress-erased-address"], company_id, address, reason)


async def is_erased_address_suppressed(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, address: str
) -> bool:
    return await db.fetchval(SQL["erased-address-suppressed"], company_id, address)
