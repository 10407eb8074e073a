"""Campaign counters follow the mail queue and the tracking events (control/performance.py):
delivered and bounced recipients, people who opened, clicked or unsubscribed — machines left
out — and a performance_update event reaches the company's WebSocket clients when they move."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import websockets

from control.performance import roll_up
from tests.support.fixtures_control import Control


async def _queue(
    pool: asyncpg.Pool, company_id: int, campaign_id: int, states: list[str]
) -> list[int]:
    """A campaign message with one recipient row per state; the recipient row ids."""
    message_id = await pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size, category,"
        " campaign_id) VALUES ($1, 'news@x.example', 'x.example', 'body', 4, 'marketing', $2)"
        " RETURNING id",
        company_id,
        campaign_id,
    )
    ids = []
    for n, state in enumerate(states):
        ids.append(
            await pool.fetchval(
                "INSERT INTO recipients (message_id, company_id, recipient, domain, state,"
                " expires_at) VALUES ($1, $2, $3, 'dest.example', $4, now() + interval '1 day')"
                " RETURNING id",
                message_id,
                company_id,
                f"r{n}@dest.example",
                state,
            )
        )
    return ids


async def _event(
    pool: asyncpg.Pool,
    company_id: int,
    campaign_id: int,
    kind: str,
    recipient_id: int,
    machine: bool = False,
) -> None:
    await pool.execute(
        "INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id, machine,"
        " machine_reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        kind,
        datetime.now(UTC),
        company_id,
        recipient_id,
        campaign_id,
        machine,
        "apple_mpp" if machine else None,
    )


async def _bounce_event(
    pool: asyncpg.Pool, company_id: int, campaign_id: int, kind: str, recipient_id: int
) -> None:
    await pool.execute(
        "INSERT INTO bounce_events (company_id, recipient_id, campaign_id, address, domain,"
        " kind, reason, source) VALUES ($1, $2, $3, 'r@dest.example', 'dest.example', $4,"
        " 'mailbox_unknown', $5)",
        company_id,
        recipient_id,
        campaign_id,
        kind,
        "mailto" if kind == "unsubscribed" else "dsn",
    )


async def test_counters_follow_the_queue_and_human_events(control: Control) -> None:
    admin = await control.user(await control.company())
    ids = await control.fixtures(admin)
    company, campaign = admin.company.id, ids["campaign"]
    r1, r2, r3, _ = await _queue(
        control.pool, company, campaign, ["delivered", "delivered", "delivered", "bounced"]
    )
    for recipient in (r1, r1, r2):  # r1 opened twice: one person
        await _event(control.pool, company, campaign, "open", recipient)
    await _event(control.pool, company, campaign, "open", r3, machine=True)  # Apple MPP
    await _event(control.pool, company, campaign, "click", r1)
    await _event(control.pool, company, campaign, "click", r2, machine=True)  # a scanner
    await _event(control.pool, company, campaign, "unsubscribe", r2)
    await _event(control.pool, company, campaign, "unsubscribe", r2)  # page, then one-click
    await _bounce_event(control.pool, company, campaign, "unsubscribed", r2)  # and mailto
    await _bounce_event(control.pool, company, campaign, "unsubscribed", r3)  # mailto only
    await _bounce_event(control.pool, company, campaign, "bounced", r3)  # a DSN after delivery

    url = control.url.replace("http://", "ws://") + "/api/ws"
    headers = {"Authorization": admin.auth["Authorization"]}
    async with websockets.connect(url, additional_headers=headers) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "ready"
        assert await roll_up(control.pool) >= 1
        event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["event"] == "email_campaign.performance_update"
    data = event["data"]
    assert data["id"] == campaign
    counters = {k: data[k] for k in data if k.endswith("_count")}
    assert counters == {
        "delivered_count": 3,
        "bounced_count": 2,
        "opened_count": 2,
        "clicked_count": 1,
        "unsubscribed_count": 2,
    }
    assert data["open_rate"] == round(2 / 3, 4)

    r = await control.client.get(
        f"/api/email-campaigns/{campaign}/performance/", headers=admin.auth
    )
    assert {k: r.json()[k] for k in counters} == counters
    # Nothing moved: nothing rewritten, nothing announced.
    assert await roll_up(control.pool) == 0


async def test_only_one_process_rolls_up_at_a_time(control: Control) -> None:
    admin = await control.user(await control.company())
    ids = await control.fixtures(admin)
    await _queue(control.pool, admin.company.id, ids["campaign"], ["delivered"])
    await _event(control.pool, admin.company.id, ids["campaign"], "open", None)
    async with control.pool.acquire() as other, other.transaction():
        await other.execute("SELECT pg_advisory_xact_lock(1397575749)")  # "SMPE"
        assert await roll_up(control.pool) == 0  # another process is at it
    assert await roll_up(control.pool) >= 1
    r = await control.client.get(
        f"/api/email-campaigns/{ids['campaign']}/performance/", headers=admin.auth
    )
    # an aggregate-only tenant's anonymous human open counts once
    assert r.json()["opened_count"] == 1 and r.json()["delivered_count"] == 1
