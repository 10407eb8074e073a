"""Delivery through a PostgreSQL outage, on a PostgreSQL of the test's own: what the receivers
took while the database was away is recorded once it returns, never sent twice, and delivery
carries on by itself."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mta import database, queue, tenants
from mta.config import build_config
from mta.daemon import start_engine
from mta.delivery import DeliveryEngine
from mta.queue import Submission
from tests.support.fixtures_daemon import TEST_DOMAIN, daemon_settings
from tests.support.own_postgres import OwnPostgres


@contextlib.asynccontextmanager
async def _engine(
    own_postgres: OwnPostgres, tmp_path: Path, dns_server: Any, mx_port: int
) -> AsyncIterator[tuple[DeliveryEngine, asyncpg.Pool]]:
    settings = daemon_settings(
        tmp_path,
        own_postgres.url,
        dns_server.port,
        mx_port,
        sending_domains=[],
        limits={"default": {"connections": 20}},
    )
    config = build_config(settings)
    db = await database.connect(own_postgres.url, size=4)
    engine, keys = await start_engine(config, db, own_postgres.url, 0, 1)
    yield engine, db
    await engine.stop(grace=5)
    await keys.stop()
    await db.close()


@pytest.fixture
async def outage_engine(
    own_postgres: OwnPostgres, tmp_path: Path, dns_server: Any, mx_port: int
) -> AsyncIterator[tuple[DeliveryEngine, asyncpg.Pool]]:
    async with _engine(own_postgres, tmp_path, dns_server, mx_port) as started:
        yield started


@pytest.fixture
async def engine_on_a_full_disk(
    own_postgres: OwnPostgres, tmp_path: Path, dns_server: Any, mx_port: int
) -> AsyncIterator[tuple[DeliveryEngine, asyncpg.Pool]]:
    """The engine with its state directory on a 1 MB tmpfs filled to the last byte."""
    state = tmp_path / "state"
    state.mkdir()
    mounted = await asyncio.to_thread(
        subprocess.run,
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with contextlib.suppress(OSError), (state / "filler").open("wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
        async with _engine(own_postgres, tmp_path, dns_server, mx_port) as started:
            yield started
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(state)], check=False)


async def _enqueue(db: asyncpg.Pool, count: int) -> None:
    company = await tenants.ensure_company(db, "acme")
    await queue.enqueue(
        db,
        Submission(
            company_id=company,
            credential_id=None,
            mail_from=f"app@{TEST_DOMAIN}",
            from_domain=TEST_DOMAIN,
            recipients=[f"r{i}@dest.test" for i in range(count)],
            body=f"From: app@{TEST_DOMAIN}\r\nSubject: hi\r\n\r\nhi\r\n".encode(),
        ),
        3600,
    )


async def _states(db: asyncpg.Pool) -> dict[str, int]:
    return await queue.state_totals(db)


async def test_outcomes_of_an_outage_are_written_when_postgresql_returns_and_nothing_is_resent(
    outage_engine, own_postgres: OwnPostgres, dns_server, mx_factory, mx_port
) -> None:
    engine, db = outage_engine
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.accept_delay = 1.0  # the receivers answer after PostgreSQL has gone
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    await _enqueue(db, 20)
    deadline = time.monotonic() + 10
    while mx.connections < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert mx.connections == 20 and engine.backlog == 20  # every message is on its way

    await own_postgres.stop()
    deadline = time.monotonic() + 15
    while len(mx.messages) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(mx.messages) == 20  # every receiver has its message; no outcome written
    # Longer than the old 7.5 s of retries after which outcomes were dropped, and long enough
    # for them to be kept on disk too.
    await asyncio.sleep(9)
    journal = list((engine._config.state_path / "outcomes").glob("*.jsonl"))
    assert journal and len(journal[0].read_bytes().splitlines()) == 20

    await own_postgres.start()
    deadline = time.monotonic() + 20
    while (await _states(db)).get("delivered", 0) < 20 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await _states(db) == {"delivered": 20}
    assert await db.fetchval("SELECT count(*) FROM attempts") == 20  # each recorded once
    assert not journal[0].exists()

    await _enqueue(db, 5)  # and delivery goes on by itself
    deadline = time.monotonic() + 15
    while (await _states(db)).get("delivered", 0) < 25 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await _states(db) == {"delivered": 25}
    assert len(mx.messages) == 25  # nobody got anything twice


async def test_a_full_state_directory_keeps_outcomes_in_memory_until_postgresql_returns(
    engine_on_a_full_disk, own_postgres: OwnPostgres, dns_server, mx_factory, mx_port
) -> None:
    engine, db = engine_on_a_full_disk
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.accept_delay = 1.0
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    await _enqueue(db, 10)
    deadline = time.monotonic() + 10
    while mx.connections < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await own_postgres.stop()
    deadline = time.monotonic() + 15
    while len(mx.messages) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(7)  # past the point where outcomes go to the journal: the disk is full
    journals = (engine._config.state_path / "outcomes").glob("*.jsonl")
    assert all(j.stat().st_size == 0 for j in journals)  # nothing could be kept on disk

    await own_postgres.start()
    deadline = time.monotonic() + 20
    while (await _states(db)).get("delivered", 0) < 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await _states(db) == {"delivered": 10}
    assert len(mx.messages) == 10
