"""Crash safety of a campaign send (issue 10, point 6): `sendmill serve` killed with SIGKILL
while the campaign is being enqueued, restarted, killed again while it is being delivered,
restarted: the send resumes where it stopped, every contact gets it, none twice (beyond what
SMTP itself cannot prevent: a message the MX accepted in the instant before the kill, whose
outcome was not written yet, is sent again, with the same Message-ID)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import time
from collections import defaultdict
from typing import Any

import asyncpg
import httpx
import pytest

from control.cli import create_company, create_user
from mta import tenants
from tests.support.campaigns import CHEAP_CONTROL, HTML, TEXT
from tests.support.daemon_process import DaemonProcess, write_config
from tests.support.fixtures_control import CHEAP_HASHER, PASSWORD, list_body, template_body
from tests.support.fixtures_daemon import TEST_DOMAIN, daemon_settings

DOMAIN = "crash.test"
CONTACTS = 6_000


async def _start(make, name: str) -> tuple[DaemonProcess, str]:
    daemon, settings = make(name)
    daemon.start()
    port = int(settings["control"]["listen"].rsplit(":", 1)[1])
    await daemon.wait_listening(port)
    return daemon, f"http://{settings['control']['listen']}"


def _kill(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(10)


async def _login(url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.post(
            "/api/auth/login", json={"email": "boss@acme.example", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.mark.slow
async def test_kill_9_during_enqueue_and_during_delivery_loses_and_doubles_nothing(
    tmp_path, database_url, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port, starttls=False)
    mx.accept_delay = 0.002
    dns_server.add_mx(DOMAIN, [(10, f"mx.{DOMAIN}")])
    dns_server.add_a(f"mx.{DOMAIN}", "127.0.0.2")
    db = await asyncpg.connect(database_url)
    company = await create_company(db, "acme")
    await create_user(db, "acme", "boss@acme.example", "admin", PASSWORD, hasher=CHEAP_HASHER)
    assert company == await tenants.ensure_company(db, "acme")

    def make(name: str, **overrides: Any) -> tuple[DaemonProcess, dict[str, Any]]:
        settings = daemon_settings(
            tmp_path / name,
            database_url,
            dns_server.port,
            mx_port,
            control={**CHEAP_CONTROL, "enqueue_chunk": 200},
            **overrides,
        )
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        config = write_config(tmp_path / name / "sendmill.toml", settings)
        return DaemonProcess(config, tmp_path / name / "daemon.log"), settings

    daemon, url = await _start(make, "node")
    try:
        headers = await _login(url)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
            t = await api.post(
                "/api/email-templates/",
                json=template_body("CR", html_content=HTML, text_content=TEXT),
            )
            lst = await api.post("/api/email-lists/", json=list_body("CR"))
            s = await api.post(
                "/api/sender-profiles/",
                json={"profile_name": "N", "from_address": f"news@{TEST_DOMAIN}"},
            )
            assert t.status_code == lst.status_code == s.status_code == 201
            await db.execute(
                "INSERT INTO contacts (company_id, email, first_name, opt_in_state)"
                " SELECT $1, 'c' || g || '@crash.test', 'C' || g, 'confirmed'"
                " FROM generate_series(1, $2) g",
                company,
                CONTACTS,
            )
            await db.execute(
                "INSERT INTO list_members (company_id, list_id, contact_id)"
                " SELECT company_id, $2, id FROM contacts WHERE company_id = $1",
                company,
                lst.json()["id"],
            )
            c = await api.post(
                "/api/email-campaigns/",
                json={
                    "campaign_name": "Crash",
                    "subject_line": "Hi {{ contact.first_name }}",
                    "campaign_type": "regular",
                    "email_template_id": t.json()["id"],
                    "target_list_id": lst.json()["id"],
                    "sender_profile_id": s.json()["id"],
                },
            )
            cid = c.json()["id"]
            r = await api.post(f"/api/email-campaigns/{cid}/send/", json={})
            assert r.status_code == 200, r.text
        # --- kill -9 while the queue rows are being written ---------------------------------
        deadline = time.monotonic() + 30
        while not await db.fetchval(
            "SELECT enqueued > 0 FROM campaign_versions WHERE campaign_id = $1", cid
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        _kill(daemon)
        at_kill = await db.fetchrow(
            "SELECT enqueued, enqueued_at FROM campaign_versions WHERE campaign_id = $1", cid
        )
        daemon, url = await _start(make, "node")
        # --- kill -9 again while it is being delivered --------------------------------------
        deadline = time.monotonic() + 60
        while len(mx.messages) < CONTACTS // 3:
            assert time.monotonic() < deadline, f"{len(mx.messages)} delivered"
            await asyncio.sleep(0.05)
        _kill(daemon)
        daemon, url = await _start(make, "node")
        deadline = time.monotonic() + 240
        while (
            await db.fetchval("SELECT campaign_status FROM email_campaigns WHERE id = $1", cid)
            != "sent"
        ):
            assert time.monotonic() < deadline, "not sent after the restarts"
            await asyncio.sleep(0.5)
    finally:
        daemon.stop()

    rows = await db.fetch(
        "SELECT r.recipient, r.state::text FROM recipients r JOIN messages m"
        " ON m.id = r.message_id WHERE m.campaign_id = $1",
        cid,
    )
    await db.close()
    assert at_kill["enqueued_at"] is None or at_kill["enqueued"] < CONTACTS, "killed after enqueue"
    # No gaps, no duplicates in the queue: one row per contact, each delivered.
    assert len(rows) == len({r["recipient"] for r in rows}) == CONTACTS
    assert {r["state"] for r in rows} == {"delivered"}
    # At the receiver: everyone once; a repeat only for the instant before the kill, same mail.
    ids: dict[str, list[str]] = defaultdict(list)
    for m in mx.messages:
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        ids[m.rcpt_tos[0]].append(msg["Message-ID"])
    assert len(ids) == CONTACTS
    repeated = {a: v for a, v in ids.items() if len(v) > 1}
    assert all(len(set(v)) == 1 for v in repeated.values()), "a repeat was a different message"
    assert len(repeated) <= 400, f"{len(repeated)} contacts got the campaign twice"
