"""Serving the control API from several processes: one API whichever process answers —
the same logins, one request-rate limit per user across processes, revocation everywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from control.cli import create_company, create_user
from control.ratelimit import RateLimiter, SharedRateTable
from mta.config import build_config
from tests.support.daemon_process import DaemonProcess, write_config
from tests.support.fixtures_control import CHEAP_HASHER, CHEAP_HASHING, PASSWORD
from tests.support.fixtures_daemon import daemon_settings


def test_processes_sharing_a_block_share_each_users_limit() -> None:
    block = SharedRateTable.create_block()
    try:
        first = RateLimiter("60/m", 3, SharedRateTable(block.name))
        second = RateLimiter("60/m", 3, SharedRateTable(block.name))
        now = 1000.0
        # a burst of 3 in all, whichever "process" counts the request
        assert [first.acquire("user:1", now), second.acquire("user:1", now)] == [0.0, 0.0]
        assert first.acquire("user:1", now) == 0.0
        assert second.acquire("user:1", now) > 0
        assert first.acquire("user:2", now) == 0.0  # another user is not affected
        assert second.acquire("user:1", now + 1.0) == 0.0  # one per second at 60/m
        first.table.close()
        second.table.close()
    finally:
        block.close()
        block.unlink()


def test_more_keys_than_slots_never_limit_the_wrong_key() -> None:
    limiter = RateLimiter("1/h", 1, SharedRateTable(slots=16))
    now = 50.0
    for n in range(200):  # a flood of distinct keys through a 16-slot table
        assert limiter.acquire(f"user:{n}", now) == 0.0, n
    # the latest key is still in the table and limited; the flood forgot older ones early
    # (they start afresh) but never limited a key for another's requests
    assert limiter.acquire("user:199", now) > 0


async def test_sendmill_serve_runs_the_control_api_in_several_processes(
    tmp_path: Path, database_url: str, dns_server, mx_port: int
) -> None:
    """`[control] processes = 2`: both processes answer on one port, a user's rate limit holds
    across them, and SIGTERM stops all with exit status 0."""
    settings = daemon_settings(tmp_path, database_url, dns_server.port, mx_port)
    settings["control"].update(processes=2, rate_limit="6/m", rate_burst=8, **CHEAP_HASHING)
    config = build_config(settings)
    db = await asyncpg.connect(database_url)
    try:
        await create_company(db, "multiproc")
        email = "admin@multiproc.example"
        await create_user(db, "multiproc", email, "admin", PASSWORD, hasher=CHEAP_HASHER)
    finally:
        await db.close()
    (tmp_path / "state").mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(write_config(tmp_path / "sendmill.toml", settings), tmp_path / "log")
    daemon.start()
    base = f"http://{config.control.listen}"
    try:
        await daemon.wait_listening(int(config.control.listen.rsplit(":", 1)[1]))
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def me() -> int:  # a new connection each: the kernel spreads them over both
            async with httpx.AsyncClient(base_url=base) as client:
                return (await client.get("/api/auth/me", headers=auth)).status_code

        # 24 requests on 24 connections against a burst of 8 at 6/min: with a limit per
        # process about 16 would pass; with one shared table, 8
        statuses = [await me() for _ in range(24)]
        assert statuses.count(200) == 8, statuses
        assert set(statuses) == {200, 429}
        # The daemon's /metrics adds up what both processes counted.
        async with httpx.AsyncClient(base_url=f"http://{config.http.listen}") as client:
            text = (await client.get("/metrics")).text
        counted = {
            sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "sendmill_control_requests_total"
            and sample.labels["route"] == "/api/auth/me"
        }
        assert counted == {"200": 8.0, "429": 16.0}
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0
