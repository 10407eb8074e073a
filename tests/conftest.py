"""Shared fixtures: a real PostgreSQL (SENDMILL_TEST_DATABASE_URL, else the embedded server) and
a fresh, migrated database per test, cloned from a template so each test starts in ~50 ms."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from mta import database

# Each checkout gets its own pytest temp root: pytest keeps only the last three runs' folders and
# would otherwise delete the embedded PostgreSQL of a run still going in another checkout.
_TEMP_ROOT = Path(tempfile.gettempdir()) / (
    "sendmill-tests-"
    + hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
)
_TEMP_ROOT.mkdir(exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(_TEMP_ROOT))

pytest_plugins = [
    "tests.support.fixtures_dns",
    "tests.support.fixtures_mx",
    "tests.support.fixtures_daemon",
    "tests.support.fixtures_control",
    "tests.support.own_postgres",
]

TEMPLATE = "sendmill_template"


def _with_database(url: str, name: str) -> str:
    """Return `url` pointed at database `name` (works for TCP and Unix-socket URLs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the PostgreSQL server the tests use (its maintenance database)."""
    url = os.environ.get("SENDMILL_TEST_DATABASE_URL")
    if url:
        return url
    state = Path(os.environ.get("SENDMILL_TEST_STATE", tmp_path_factory.mktemp("pg")))
    return database.embedded_url(state, cleanup_mode="stop")


@pytest.fixture(scope="session")
async def template_database(pg_server_url: str) -> str:
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(_with_database(pg_server_url, TEMPLATE))
    try:
        await database.migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE


@pytest.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh migrated database for one test; dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await conn.close()
    yield _with_database(pg_server_url, name)
    conn = await asyncpg.connect(pg_server_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await database.connect(database_url, size=10)
    yield p
    await p.close()
