"""The schema migrates on a real PostgreSQL and is recorded, so a second run applies nothing."""

import asyncpg

from mta import database


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
