"""Tenancy: companies and the sending domains they own.

Every credential, message and suppression belongs to a company; a credential may only send
From a domain its company owns. Sending domains listed in the config are written to the
database at start, so the control API and several daemons see the same ownership.
"""

from __future__ import annotations

import asyncpg

from mta.config import Config
from mta.queries import Queries

SQL = Queries("mta")


async def ensure_company(db: asyncpg.Pool | asyncpg.Connection, name: str) -> int:
    """The id of company `name`, created when missing."""
    return await db.fetchval(SQL["ensure-company"], name)


async def company_by_name(db: asyncpg.Pool | asyncpg.Connection, name: str) -> int | None:
    """The id of the company called `name`, None when there is none."""
    return await db.fetchval(SQL["company-by-name"], name)


async def sync_sending_domains(db: asyncpg.Pool | asyncpg.Connection, config: Config) -> None:
    """Write the config's sending domains (and their companies) to the database."""
    for domain in config.sending_domains:
        company_id = await ensure_company(db, domain.company)
        await db.execute(SQL["upsert-sending-domain"], company_id, domain.domain, domain.pool)


async def company_of_domain(db: asyncpg.Pool | asyncpg.Connection, domain: str) -> int | None:
    """The company owning sending domain `domain`, or None."""
    return await db.fetchval(SQL["company-of-domain"], domain)
