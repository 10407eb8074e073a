"""A site's connection limit holds across daemons on one database (shared connection slots)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from mta import database, queue, tenants
from mta.connection_slots import ConnectionSlots
from mta.database import DATABASE_ERRORS
from mta.queue import Submission
from tests.support.fixtures_daemon import TEST_DOMAIN
from tests.support.own_postgres import OwnPostgres


async def test_slots_are_shared_between_nodes_and_freed_when_a_lease_runs_out(
    pool: asyncpg.Pool,
) -> None:
    a, b = ConnectionSlots(pool, "node-a"), ConnectionSlots(pool, "node-b", lease=0.3)
    assert await a.take("mx.dest.test", 2) == 0
    assert await b.take("mx.dest.test", 2) == 1
    assert await a.take("mx.dest.test", 2) is None  # the limit is 2, whoever asks
    assert await a.take("other.test", 2) == 0  # sites do not share slots

    await a.release("mx.dest.test", 0)
    assert await b.take("mx.dest.test", 2) == 0
    await asyncio.sleep(0.4)  # node-b died: its leases run out
    assert await a.take("mx.dest.test", 2) is not None
    assert await a.take("mx.dest.test", 2) is not None
    await a.release_all()
    assert (
        await pool.fetchval("SELECT count(*) FROM site_connection_slots WHERE node = 'node-a'") == 0
    )


async def test_two_daemons_never_open_more_connections_to_a_site_than_its_limit(
    tmp_path, daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.accept_delay = 0.05  # keep connections busy so that they overlap
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    settings = {
        "limits": {"default": {"connections": 2, "messages_per_connection": 5}},
        "delivery": {"batch_size": 4, "poll_interval": "0.1s", "idle_timeout": "0.2s"},
    }
    first = await daemon_factory(state_dir=str(tmp_path / "one"), **settings)
    await daemon_factory(state_dir=str(tmp_path / "two"), **settings)
    company = await tenants.ensure_company(first.db, "acme")
    for i in range(12):
        await queue.enqueue(
            first.db,
            Submission(
                company_id=company,
                credential_id=None,
                mail_from=f"app@{TEST_DOMAIN}",
                from_domain=TEST_DOMAIN,
                recipients=[f"r{i}-{j}@dest.test" for j in range(5)],
                body=f"From: app@{TEST_DOMAIN}\r\nSubject: {i}\r\n\r\nhi\r\n".encode(),
            ),
            3600,
        )
    deadline = time.monotonic() + 30
    while len(mx.messages) < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(mx.messages) == 60
    nodes = await first.db.fetchval("SELECT count(DISTINCT node) FROM attempts")
    assert nodes == 2  # both daemons delivered
    assert mx.peak_connections <= 2


async def test_a_slot_whose_release_the_database_missed_is_freed_at_the_next_renewal(
    own_postgres: OwnPostgres,
) -> None:
    db = await database.connect(own_postgres.url, size=2)
    try:
        ours = ConnectionSlots(db, "node-a", take_grace=0.5)
        other = ConnectionSlots(db, "node-b")
        closing = await ours.take("mx.dest.test", 2)
        still_open = await ours.take("mx.dest.test", 2)
        await own_postgres.stop()
        with pytest.raises(DATABASE_ERRORS):  # the connection ends while PostgreSQL is away
            await ours.release("mx.dest.test", closing)
        assert ours.stale.is_set()
        await own_postgres.start()
        await asyncio.sleep(0.5)

        await ours.renew()
        # Before issue 11 the renewal kept the leaked slot forever: the site stayed full.
        assert await other.take("mx.dest.test", 2) == closing
        assert await other.take("mx.dest.test", 2) is None  # the open connection keeps its own
        assert ours.live == {("mx.dest.test", still_open)}
        assert not ours.stale.is_set()
    finally:
        await db.close()
