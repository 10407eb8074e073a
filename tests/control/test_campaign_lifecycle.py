"""Pause, resume and cancel a campaign being sent to a slow receiving MX (issue 10, point 5),
through the running daemon: paused recipients are not attempted, resumed ones all arrive once,
cancelled ones never do and are counted; progress tells where the send is."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from tests.support.campaigns import CHEAP_CONTROL, add_contacts, campaign_setup

DOMAIN = "slow.test"
# One connection, 0.15 s per message: about 6 messages a second.
SLOW = {"limits": {DOMAIN: {"connections": 1}}, "control": CHEAP_CONTROL}


async def _setup(daemon_factory, dns_server, mx_factory, mx_port, count: int):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.accept_delay = 0.15
    dns_server.add_mx(DOMAIN, [(10, f"mx.{DOMAIN}")])
    dns_server.add_a(f"mx.{DOMAIN}", "127.0.0.2")
    daemon = await daemon_factory(**SLOW)
    return mx, daemon, [f"p{i}@{DOMAIN}" for i in range(count)]


async def _progress(s, campaign_id: int) -> dict:
    return await s.api("GET", f"/api/email-campaigns/{campaign_id}/progress/")


async def _settled(s, campaign_id: int, timeout: float = 15) -> dict:
    """Progress once nothing of the campaign is being delivered any more."""
    deadline = time.monotonic() + timeout
    while True:
        p = await _progress(s, campaign_id)
        if p["sending"] == 0 and p["queued"] == 0 and p["deferred"] == 0:
            return p
        assert time.monotonic() < deadline, p
        await asyncio.sleep(0.1)


async def _until_delivered(s, campaign_id: int, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (await _progress(s, campaign_id))["delivered"] < n:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_pause_holds_every_recipient_and_resume_sends_the_rest_once(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx, daemon, addresses = await _setup(daemon_factory, dns_server, mx_factory, mx_port, 60)
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        await add_contacts(s.db, s.company_id, s.list_id, addresses)
        campaign = await s.campaign()
        cid = campaign["id"]
        await s.api("POST", f"/api/email-campaigns/{cid}/send/", json={})
        await _until_delivered(s, cid, 3)

        paused = await s.api("POST", f"/api/email-campaigns/{cid}/pause/", json={})
        assert paused["campaign_status"] == "paused"
        held = await _settled(s, cid)
        assert held["held"] > 0 and held["held"] + held["delivered"] == 60
        arrived = len(mx.messages)
        await asyncio.sleep(1.5)  # nothing more is attempted while paused
        assert len(mx.messages) == arrived == held["delivered"]
        assert (await _progress(s, cid))["held"] == held["held"]

        resumed = await s.api("POST", f"/api/email-campaigns/{cid}/resume/", json={})
        assert resumed["campaign_status"] == "sending"
        done = await s.wait_status(cid, "sent", timeout=60)
        assert done["total_recipients"] == 60

    received = Counter(r for m in mx.messages for r in m.rcpt_tos)
    assert set(received) == set(addresses)
    assert set(received.values()) == {1}
    final = {"delivered": 60, "held": 0, "cancelled": 0, "pending": 0, "finished": 60}
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s.client = client
        p = await _progress(s, cid)
    assert {k: p[k] for k in final} == final
    assert p["audience"] == p["enqueued"] == 60 and p["enqueue_done"]


async def test_cancel_makes_the_unsent_rest_final_and_counted(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx, daemon, addresses = await _setup(daemon_factory, dns_server, mx_factory, mx_port, 50)
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        await add_contacts(s.db, s.company_id, s.list_id, addresses)
        campaign = await s.campaign()
        cid = campaign["id"]
        await s.api("POST", f"/api/email-campaigns/{cid}/send/", json={})
        await _until_delivered(s, cid, 3)
        cancelled = await s.api("POST", f"/api/email-campaigns/{cid}/cancel/", json={})
        assert cancelled["campaign_status"] == "cancelled"
        p = await _settled(s, cid)
        await asyncio.sleep(1.0)
        after = await _progress(s, cid)
        assert after["cancelled"] > 0
        assert after["delivered"] + after["cancelled"] == 50
        assert after["pending"] == 0 and after["finished"] == 50
        assert after["delivered"] == p["delivered"] == len(mx.messages)
        # A cancelled campaign is final: it cannot be resumed.
        r = await client.post(f"/api/email-campaigns/{cid}/resume/", headers=s.headers, json={})
        assert r.status_code == 409
    received = Counter(r for m in mx.messages for r in m.rcpt_tos)
    assert set(received.values()) == {1}
