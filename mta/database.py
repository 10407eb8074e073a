"""PostgreSQL access: the embedded server, the connection pool and schema migrations.

With no `database.url` the daemon starts a private PostgreSQL (the `pgserver` package) in
`<state_dir>/pgdata`, reached over a Unix socket (mta/embedded_postgres.py); the same SQL runs
against an external server in production. Migrations are numbered `.sql` files in each
package's `schema/` folder, applied in order and recorded in `schema_migrations`: all pending
migrations in ONE transaction, under an advisory lock, so a failing migration leaves the schema
as it was and other daemons starting at the same moment wait, then find nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import asyncpg
import orjson

from mta import embedded_postgres
from mta.config import Config

log = logging.getLogger("sendmill.database")
T = TypeVar("T")

# Packages that own tables, in dependency order: later ones may reference earlier ones.
SCHEMA_PACKAGES = ("mta", "bounce", "tracker", "control")
MIGRATION_LOCK = 7411001  # pg_advisory_xact_lock key: one migrator at a time across daemons

# What a database call raises when PostgreSQL is away or a connection broke under it, for the
# loops that must outlive any outage (delivery): asyncpg's InterfaceError ("connection was
# closed in the middle of operation") and InternalClientError (a protocol state it cannot
# leave) are no PostgresError, and caught as one they were not (issue 11).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


class PendingMigrations(Exception):
    """The database schema is behind the code and migrations were not allowed to run."""


@dataclass(frozen=True)
class Migration:
    package: str
    version: str
    sql: str

    @property
    def id(self) -> str:
        return f"{self.package}/{self.version}"


def embedded_url(state_dir: Path, cleanup_mode: str | None = "auto") -> str:
    """Start (or join) the embedded PostgreSQL in `state_dir/pgdata` and return its URL; the
    last process using it stops it (mta/embedded_postgres.py has the rules)."""
    return embedded_postgres.url(state_dir, cleanup_mode)


async def resolve_url(config: Config) -> str:
    if config.database.url:
        return config.database.url
    return await asyncio.to_thread(embedded_url, config.state_path)


def discover_migrations(packages: tuple[str, ...] = SCHEMA_PACKAGES) -> list[Migration]:
    found: list[Migration] = []
    for package in packages:
        try:
            folder = resources.files(package) / "schema"
        except ModuleNotFoundError:
            continue
        if not folder.is_dir():
            continue
        files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
        for f in files:
            found.append(Migration(package, f.name.removesuffix(".sql"), f.read_text()))
    return found


async def pending_migrations(conn: asyncpg.Connection) -> list[Migration]:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {r["id"] for r in await conn.fetch("SELECT id FROM schema_migrations")}
    return [m for m in discover_migrations() if m.id not in applied]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every pending migration in one transaction; returns the ids applied. Safe to run
    from several daemons (they queue on the advisory lock)."""
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        for migration in await pending_migrations(conn):
            log.info("applying migration %s", migration.id)
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (id) VALUES ($1)", migration.id)
            done.append(migration.id)
    return done


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog"
    )


def _json_dumps(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def _json_loads(value: str) -> object:
    return orjson.loads(value)


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What a released connection needs before reuse. asyncpg's default sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release: a round trip
    per query on the hot path, for session state Sendmill never leaves behind (LISTEN uses its
    own connection, advisory locks are transaction-scoped)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _never_started(exc: asyncpg.exceptions.InternalClientError) -> bool:
    """asyncpg refused to start the query on this connection: nothing reached the server
    but, at most, a Parse message, so running it again on another connection is safe."""
    text = str(exc)
    return text.startswith("cannot switch to state") or text == "not connected"


class Pool(asyncpg.Pool):
    """asyncpg's pool, except that a query asyncpg refused to start on a broken connection runs
    again on another one (issue 11, defect 6).

    When PostgreSQL shuts down, each backend sends a FATAL error and closes its socket. An idle
    pooled connection reads the error first (asyncpg then waits for a ReadyForQuery that never
    comes) and the end of the stream one turn of the event loop later; a query handed that
    connection in between fails with `cannot switch to state 12; another operation (2) is in
    progress` (seen twice in the outside fault run: a submission answered 451). asyncpg aborts
    the connection when it raises this, and it raises it before sending anything that runs."""

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        return await self._again(super().execute, query, *args, timeout=timeout)

    async def executemany(self, command: str, args: object, *, timeout: float | None = None):
        return await self._again(super().executemany, command, args, timeout=timeout)

    async def fetch(self, query: str, *args: object, **kwargs: object) -> list:
        return await self._again(super().fetch, query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: object, **kwargs: object):
        return await self._again(super().fetchrow, query, *args, **kwargs)

    async def fetchval(self, query: str, *args: object, **kwargs: object):
        return await self._again(super().fetchval, query, *args, **kwargs)

    async def _again(
        self, method: Callable[..., Awaitable[T]], *args: object, **kwargs: object
    ) -> T:
        # Each refusal aborts its connection, and every idle one may be broken the same way
        # after a restart: one more try than the pool has connections always reaches a sound
        # one (3 tries were not always enough with 10 broken connections).
        tries = self.get_max_size() + 1
        for attempt in range(tries):
            try:
                return await method(*args, **kwargs)
            except asyncpg.exceptions.InternalClientError as exc:
                if attempt == tries - 1 or not _never_started(exc):
                    raise
                log.info("database: query refused by a broken connection (%s); again", exc)
        raise AssertionError("unreachable")


async def connect(url: str, size: int = 10, *, generic_plans: bool = False) -> asyncpg.Pool:
    """A connection pool with Sendmill's type codecs.

    `generic_plans` makes PostgreSQL plan each prepared statement once instead of on every
    execution: right for a few hot statements whose best plan never depends on the values (the
    intake's enqueue: re-planning it cost a third of its rate), wrong for queries with optional
    filters, which keep the default."""
    settings = {"plan_cache_mode": "force_generic_plan"} if generic_plans else None
    return await Pool(
        url,
        min_size=1,
        max_size=size,
        max_queries=50_000,  # asyncpg's defaults, which its Pool does not fill in itself
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset_connection,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=60,
        server_settings=settings,
    )


async def open_pool(config: Config, *, size: int | None = None) -> asyncpg.Pool:
    """Open the pool for `config`, applying (or refusing on) pending migrations."""
    url = await resolve_url(config)
    pool = await connect(url, size or config.database.pool_size)
    async with pool.acquire() as conn:
        if config.database.apply_migrations:
            await migrate(conn)
            pending = []
        else:
            pending = await pending_migrations(conn)
    if pending:
        await pool.close()
        raise PendingMigrations(
            "pending migrations: "
            + ", ".join(m.id for m in pending)
            + " (run `sendmill migrate` or set database.apply_migrations = true)"
        )
    return pool
