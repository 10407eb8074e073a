"""A campaign's queue rows following its status (issue 10, point 5), each move one statement
over the rows, in the transaction that changes the status:

- pause: recipients waiting in the queue are held (the delivery engine never claims held rows;
  those being delivered at that moment finish); the enqueue stops too (it only runs for
  campaigns being sent);
- resume: held recipients are due again, at once; a campaign paused before it was ever frozen
  (paused while scheduled) is frozen now;
- cancel: recipients not attempted yet become final as `cancelled`, counted apart from bounces.

Each first locks the campaign's versions, so a chunk being enqueued at that moment commits
before the move and its rows are moved too; and each announces itself to the delivery nodes
(NOTIFY on commit), which take back the campaign's jobs they leased and have not started, so a
paused campaign's recipients are not attempted while it is paused.

`progress` is what GET .../progress/ answers and the runner publishes every few seconds as
`email_campaign.progress`: audience, enqueued, and the queue rows by state.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from mta.queries import Queries

SQL = Queries("control")
PENDING = ("queued", "deferred", "sending", "held")


async def _lock(conn: asyncpg.Connection, campaign_id: int, company_id: int) -> None:
    await conn.execute(SQL["lock-campaign-versions"], campaign_id, company_id)


async def _announce(conn: asyncpg.Connection, campaign_id: int, company_id: int, move: str) -> None:
    await conn.execute(SQL["announce-campaign-move"], campaign_id, company_id, move)


async def pause(conn: asyncpg.Connection, campaign_id: int, company_id: int) -> int:
    await _lock(conn, campaign_id, company_id)
    await _announce(conn, campaign_id, company_id, "hold")
    return await conn.fetchval(SQL["hold-campaign-recipients"], campaign_id, company_id)


async def resume(conn: asyncpg.Connection, campaign_id: int, company_id: int) -> int:
    await _lock(conn, campaign_id, company_id)
    await _announce(conn, campaign_id, company_id, "release")
    return await conn.fetchval(SQL["release-campaign-recipients"], campaign_id, company_id)


async def cancel(conn: asyncpg.Connection, campaign_id: int, company_id: int) -> int:
    await _lock(conn, campaign_id, company_id)
    await _announce(conn, campaign_id, company_id, "cancel")
    return await conn.fetchval(SQL["cancel-campaign-recipients"], campaign_id, company_id)


async def is_frozen(
    db: asyncpg.Pool | asyncpg.Connection, campaign_id: int, company_id: int
) -> bool:
    return await db.fetchval(SQL["campaign-has-version"], campaign_id, company_id)


async def progress(db: asyncpg.Pool | asyncpg.Connection, campaign: Any) -> dict[str, Any]:
    """Audience (counted at send, or the rows once all are written), rows enqueued, and the
    rows by state; `finished` counts every final state."""
    row = await db.fetchrow(SQL["campaign-progress"], campaign["id"], campaign["company_id"])
    states: dict[str, int] = dict(row["states"] or {}) if row is not None else {}
    by_state = {
        name: states.get(name, 0)
        for name in (
            "queued",
            "deferred",
            "sending",
            "held",
            "delivered",
            "bounced",
            "expired",
            "suppressed",
            "cancelled",
        )
    }
    enqueued = row["enqueued"] if row is not None else 0
    return {
        "id": campaign["id"],
        "campaign_status": campaign["campaign_status"],
        "audience": campaign["total_recipients"],
        "enqueued": enqueued,
        "enqueue_done": bool(row["enqueue_done"]) if row is not None else False,
        "pending": sum(by_state[s] for s in PENDING),
        "finished": sum(n for s, n in by_state.items() if s not in PENDING),
        **by_state,
    }
