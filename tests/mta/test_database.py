"""The schema migrates on a real PostgreSQL and is recorded, so a second run applies nothing."""

import asyncio

import asyncpg

from mta import database
from tests.support.own_postgres import OwnPostgres


async def test_migrations_are_recorded_and_not_reapplied(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await database.migrate(conn) == []
        applied = {r["id"] for r in await conn.fetch("SELECT id FROM schema_migrations")}
        assert "mta/0001_queue" in applied
        states = await conn.fetchval("SELECT enum_range(NULL::recipient_state)::text")
        assert "suppressed" in states and "held" in states
    finally:
        await conn.close()


async def test_open_pool_refuses_pending_migrations_when_told_not_to_apply(
    pg_server_url: str,
) -> None:
    import dataclasses
    import uuid

    from mta.config import Config, DatabaseConfig
    from tests.conftest import _with_database

    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(pg_server_url)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        url = _with_database(pg_server_url, name)
        config = dataclasses.replace(
            Config(), database=DatabaseConfig(url=url, apply_migrations=False)
        )
        try:
            await database.open_pool(config)
        except database.PendingMigrations as exc:
            assert "mta/0001_queue" in str(exc)
        else:
            raise AssertionError("open_pool accepted a database with pending migrations")
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_queries_through_postgresql_restarts_fail_only_while_it_is_away(
    own_postgres: OwnPostgres,
) -> None:
    """Before issue 11, a pooled connection that had read PostgreSQL's FATAL goodbye but not yet
    the end of its socket was handed out, and the query failed with asyncpg's `cannot switch to
    state 12` though the server was back (the fault run saw a submission refused so)."""
    pool = await database.connect(own_postgres.url, size=10)
    await pool.execute("CREATE TABLE pings (id bigserial PRIMARY KEY, at timestamptz)")
    refused: list[str] = []
    running = True

    async def client() -> None:
        while running:
            try:
                await pool.fetch("INSERT INTO pings (at) VALUES (now()) RETURNING id")
            except asyncpg.exceptions.InternalClientError as exc:
                refused.append(str(exc))
            except database.DATABASE_ERRORS:  # PostgreSQL is away: the caller answers 451
                await asyncio.sleep(0.01)

    clients = [asyncio.create_task(client()) for _ in range(20)]
    try:
        for _ in range(3):
            await asyncio.sleep(1.0)
            await own_postgres.stop("fast")
            await asyncio.sleep(0.5)
            await own_postgres.start()
        await asyncio.sleep(1.0)
    finally:
        running = False
        await asyncio.gather(*clients)
    assert await pool.fetchval("SELECT count(*) FROM pings") > 100  # it worked in between
    await pool.close()
    assert refused == []
