"""Scheduled campaigns (issue 10, point 4): with two daemons on one database a scheduled
campaign fires once, within seconds of its time; a campaign that came due while no daemon ran
fires when one starts."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx

from tests.support.campaigns import CHEAP_CONTROL, add_contacts, campaign_setup

DOMAIN = "sched.test"


def _route(dns_server) -> None:
    dns_server.add_mx(DOMAIN, [(10, f"mx.{DOMAIN}")])
    dns_server.add_a(f"mx.{DOMAIN}", "127.0.0.2")


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def test_a_scheduled_campaign_fires_once_with_two_daemons(
    daemon_factory, dns_server, mx_factory, mx_port, tmp_path
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    _route(dns_server)
    first = await daemon_factory(control=CHEAP_CONTROL)
    second = await daemon_factory(control=CHEAP_CONTROL, state_dir=str(tmp_path / "second"))
    addresses = [f"s{i}@{DOMAIN}" for i in range(50)]
    async with httpx.AsyncClient(base_url=f"http://{first.config.control.listen}") as client:
        s = await campaign_setup(first, client)
        await add_contacts(s.db, s.company_id, s.list_id, addresses)
        campaign = await s.campaign()
        due = time.monotonic() + 2.5
        scheduled = await s.api(
            "POST",
            f"/api/email-campaigns/{campaign['id']}/send/",
            json={"scheduled_send_date": _at(2.5)},
        )
        assert scheduled["campaign_status"] == "scheduled"
        await asyncio.sleep(1.0)
        assert len(mx.messages) == 0  # not before its time
        while (await s.api("GET", f"/api/email-campaigns/{campaign['id']}/"))[
            "campaign_status"
        ] == "scheduled":
            assert time.monotonic() < due + 5, "did not fire within seconds of its time"
            await asyncio.sleep(0.1)
        done = await s.wait_status(campaign["id"], "sent", timeout=60)
    assert done["total_recipients"] == 50
    assert second.db is not None
    versions = await second.db.fetchval(
        "SELECT count(*) FROM campaign_versions WHERE campaign_id = $1", campaign["id"]
    )
    assert versions == 1
    received = Counter(r for m in mx.messages for r in m.rcpt_tos)
    assert set(received) == set(addresses) and set(received.values()) == {1}


async def test_a_campaign_due_while_no_daemon_ran_fires_at_start(
    daemon_factory, dns_server, mx_factory, mx_port, tmp_path
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    _route(dns_server)
    daemon = await daemon_factory(control=CHEAP_CONTROL)
    addresses = [f"late{i}@{DOMAIN}" for i in range(10)]
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        await add_contacts(s.db, s.company_id, s.list_id, addresses)
        campaign = await s.campaign()
        await s.api(
            "POST",
            f"/api/email-campaigns/{campaign['id']}/send/",
            json={"scheduled_send_date": _at(1.0)},
        )
    await daemon.stop(grace=5)
    await asyncio.sleep(1.5)  # it comes due while nothing runs
    later = await daemon_factory(control=CHEAP_CONTROL, state_dir=str(tmp_path / "later"))
    async with httpx.AsyncClient(base_url=f"http://{later.config.control.listen}") as client:
        s.client, s.daemon = client, later
        done = await s.wait_status(campaign["id"], "sent", timeout=30)
    assert done["total_recipients"] == 10
    assert sorted(r for m in mx.messages for r in m.rcpt_tos) == sorted(addresses)


async def test_a_sending_rate_spreads_the_campaign_over_time(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    _route(dns_server)
    daemon = await daemon_factory(control=CHEAP_CONTROL)
    addresses = [f"warm{i}@{DOMAIN}" for i in range(5)]
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        await add_contacts(s.db, s.company_id, s.list_id, addresses)
        campaign = await s.campaign()
        started = time.monotonic()
        sent = await s.api(
            "POST",
            f"/api/email-campaigns/{campaign['id']}/send/",
            json={"sending_rate_per_hour": 7200},  # one every half second
        )
        assert sent["sending_rate_per_hour"] == 7200
        await asyncio.sleep(0.6)
        assert len(mx.messages) < 4, "the rate was not applied"
        await s.wait_status(campaign["id"], "sent", timeout=90)
        took = time.monotonic() - started
    assert took >= 2.0
    assert sorted(r for m in mx.messages for r in m.rcpt_tos) == sorted(addresses)
    last = await s.db.fetchval(
        "SELECT extract(epoch FROM max(a.at) - min(v.created_at)) FROM attempts a"
        " JOIN recipients r ON r.id = a.recipient_id"
        " JOIN campaign_versions v ON v.message_id = r.message_id"
    )
    assert last >= 2.0  # the fifth is due two seconds after the send, not before
