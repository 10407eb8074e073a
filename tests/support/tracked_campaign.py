"""A campaign's mail and its recipients' tracking events written straight into the tables the
mail path and the tracker fill, for tests of what the control API and the console show."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg


async def delivered_recipients(
    pool: asyncpg.Pool, company_id: int, campaign_id: int, count: int
) -> list[int]:
    """One campaign message delivered to `count` recipients; their recipient row ids."""
    message_id = await pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size, category,"
        " campaign_id) VALUES ($1, 'news@x.example', 'x.example', 'body', 4, 'marketing', $2)"
        " RETURNING id",
        company_id,
        campaign_id,
    )
    return [
        await pool.fetchval(
            "INSERT INTO recipients (message_id, company_id, recipient, domain, state,"
            " expires_at) VALUES ($1, $2, $3, 'dest.example', 'delivered',"
            " now() + interval '1 day') RETURNING id",
            message_id,
            company_id,
            f"r{n}@dest.example",
        )
        for n in range(count)
    ]


async def tracking_event(
    pool: asyncpg.Pool, company_id: int, campaign_id: int, kind: str, recipient_id: int
) -> None:
    """A person's open or click, recorded now."""
    await pool.execute(
        "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id, machine)"
        " VALUES ($1, $2, $3, $4, $5, false)",
        kind,
        datetime.now(UTC),
        company_id,
        recipient_id,
        campaign_id,
    )
