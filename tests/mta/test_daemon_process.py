"""The daemon as operators run it: `sendmill serve` in its own process. Two daemons on one
database deliver each recipient once; a kill -9 in the middle of a run loses nothing; SIGTERM
exits 0 after finishing in-flight work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest

from mta import credentials, tenants
from mta.config import build_config
from tests.support.daemon_process import DaemonProcess, write_config
from tests.support.fixtures_daemon import TEST_DOMAIN, daemon_settings


async def _submit_many(
    port: int, login: tuple[str, str], count: int, sessions: int = 4, prefix: str = "u"
) -> int:
    """Submit `count` messages; returns how many got a 250 (accepted)."""
    accepted = 0
    numbers = iter(range(count))

    async def session() -> None:
        nonlocal accepted
        try:
            async with aiosmtplib.SMTP(
                hostname="127.0.0.1", port=port, start_tls=False, timeout=10
            ) as client:
                await client.login(*login)
                for i in numbers:
                    message = (
                        f"From: app@{TEST_DOMAIN}\r\nTo: {prefix}{i}@dest.test\r\n"
                        f"Subject: n{i}\r\n\r\nmessage {i}\r\n"
                    ).encode()
                    await client.sendmail(f"app@{TEST_DOMAIN}", [f"{prefix}{i}@dest.test"], message)
                    accepted += 1
        except (aiosmtplib.SMTPException, OSError):
            pass  # the daemon was killed under us: what was acknowledged is counted

    await asyncio.gather(*(session() for _ in range(sessions)))
    return accepted


@pytest.fixture
async def process_setup(tmp_path, database_url, dns_server, mx_factory, mx_port):
    mx = await mx_factory(host="127.0.0.2", port=mx_port, starttls=False)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    db = await asyncpg.connect(database_url)
    company = await tenants.ensure_company(db, "acme")
    await db.execute(
        "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)", company, TEST_DOMAIN
    )
    issued = await credentials.create_smtp_login(db, company, "app")
    daemons: list[DaemonProcess] = []

    def make(name: str, **overrides: Any) -> tuple[DaemonProcess, dict[str, Any]]:
        settings = daemon_settings(
            tmp_path / name, database_url, dns_server.port, mx_port, **overrides
        )
        settings["log"] = {"level": "warning", "format": "text"}
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        config = write_config(tmp_path / name / "sendmill.toml", settings)
        daemon = DaemonProcess(config, tmp_path / name / "daemon.log")
        daemons.append(daemon)
        return daemon, settings

    yield make, mx, db, (issued.login, issued.secret)
    for daemon in daemons:
        daemon.stop()
    await db.close()


def _port(settings: dict[str, Any]) -> int:
    return int(settings["smtp"]["listen"].rsplit(":", 1)[1])


async def _wait_delivered(db: asyncpg.Connection, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    delivered = 0
    while time.monotonic() < deadline:
        delivered = await db.fetchval("SELECT count(*) FROM recipients WHERE state='delivered'")
        if delivered >= count:
            break
        await asyncio.sleep(0.2)
    return delivered


async def test_two_daemons_on_one_database_deliver_each_recipient_once(process_setup) -> None:
    make, mx, db, login = process_setup
    first, s1 = make("a")
    second, s2 = make("b")
    first.start()
    second.start()
    await first.wait_listening(_port(s1))
    await second.wait_listening(_port(s2))
    accepted = sum(
        await asyncio.gather(
            _submit_many(_port(s1), login, 150, prefix="a"),
            _submit_many(_port(s2), login, 150, prefix="b"),
        )
    )
    assert accepted == 300
    assert await _wait_delivered(db, 300) == 300
    received = [m.rcpt_tos[0] for m in mx.messages]
    assert len(received) == 300 and len(set(received)) == 300  # nobody got it twice
    nodes = await db.fetch("SELECT DISTINCT node FROM attempts")
    assert len(nodes) == 2  # both daemons did part of the work
    # Stopped from a thread: the test MX runs in this event loop and must keep answering.
    assert await asyncio.to_thread(first.stop) == 0
    assert await asyncio.to_thread(second.stop) == 0


async def test_kill_9_in_the_middle_of_a_run_loses_no_accepted_message(process_setup) -> None:
    make, mx, db, login = process_setup
    daemon, settings = make("k")
    daemon.start()
    await daemon.wait_listening(_port(settings))
    total = int(os.environ.get("SENDMILL_TEST_KILL_MESSAGES", "5000"))
    submitting = asyncio.create_task(_submit_many(_port(settings), login, total, sessions=8))
    # Kill while submissions and deliveries are both under way.
    while len(mx.messages) < min(500, total // 5):
        await asyncio.sleep(0.05)
    assert daemon.process is not None
    daemon.process.kill()
    daemon.process.wait()
    accepted_before_kill = await submitting
    daemon.start()
    await daemon.wait_listening(_port(settings))
    rest = await _submit_many(_port(settings), login, 0)
    assert rest == 0
    committed = await db.fetchval("SELECT count(*) FROM recipients")
    assert committed >= accepted_before_kill  # every 250 was committed first
    assert await _wait_delivered(db, committed, timeout=120) == committed
    received = {m.rcpt_tos[0] for m in mx.messages}
    rows = {r["recipient"] for r in await db.fetch("SELECT recipient FROM recipients")}
    assert rows <= received  # every accepted message arrived (at least once)
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_a_rate_limit_holds_across_two_daemons(process_setup) -> None:
    make, mx, db, login = process_setup
    limits = {"limits": {"dest.test": {"connections": 2, "rate": "4/s"}}}
    first, s1 = make("r1", **limits)
    second, s2 = make("r2", **limits)
    first.start()
    second.start()
    await first.wait_listening(_port(s1))
    await second.wait_listening(_port(s2))
    await asyncio.gather(
        _submit_many(_port(s1), login, 8, prefix="x"),
        _submit_many(_port(s2), login, 8, prefix="y"),
    )
    assert await _wait_delivered(db, 16) == 16
    span = await db.fetchval(
        "SELECT extract(epoch FROM max(at) - min(at)) FROM attempts WHERE outcome = 'delivered'"
    )
    nodes = await db.fetchval("SELECT count(DISTINCT node) FROM attempts")
    assert nodes == 2
    # 16 messages at 4/s shared, a burst of 4: at least 3 s. Each daemon alone at 4/s would
    # have finished its 8 in about 1 s.
    assert float(span) >= 2.5, f"16 messages at a shared 4/s took only {float(span):.2f}s"
    assert len(mx.messages) == 16


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    return None


def _running(pid: int) -> bool:
    found = _state_and_parent(pid)
    return found is not None and found[0] not in ("Z", "X")


def _is_resource_tracker(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def _children(pid: int) -> list[int]:
    """Running processes whose parent is `pid`."""
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [c for c in pids if (_state_and_parent(c) or ("", 0))[1] == pid and _running(c)]


async def test_service_processes_stop_when_the_daemon_is_killed(
    tmp_path: Path, database_url: str, dns_server, mx_port: int
) -> None:
    """SIGKILL gives the daemon no chance to stop its processes: they notice on their own,
    rather than serve on beside the next daemon with the old configuration."""
    settings = daemon_settings(tmp_path, database_url, dns_server.port, mx_port)
    for section in ("delivery", "tracker", "control"):
        settings[section]["processes"] = 2
    config = build_config(settings)
    (tmp_path / "state").mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(write_config(tmp_path / "sendmill.toml", settings), tmp_path / "log")
    daemon.start()
    children: list[int] = []
    try:
        await daemon.wait_listening(int(config.control.listen.rsplit(":", 1)[1]))
        await daemon.wait_listening(int(config.tracker.listen.rsplit(":", 1)[1]))
        assert daemon.process is not None
        async with asyncio.timeout(20):  # the spawned processes (and the resource tracker)
            while len(children := _children(daemon.process.pid)) < 6:
                await asyncio.sleep(0.1)
        daemon.process.kill()
        daemon.process.wait()
        async with asyncio.timeout(15):
            while alive := [pid for pid in children if _running(pid)]:
                # the resource tracker lingers until the last of them has gone: not a server
                if all(_is_resource_tracker(p) for p in alive):
                    break
                await asyncio.sleep(0.1)
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
        for pid in children:  # whatever survived a failure here must not outlive the test
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
