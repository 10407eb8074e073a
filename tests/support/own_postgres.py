"""pytest plugin: a PostgreSQL of the test's own (the shared one serves every other test), which
the test may stop, kill and start again to see what Sendmill does through an outage."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from mta import database


@dataclass
class OwnPostgres:
    """An embedded PostgreSQL (pgserver) that a test may stop and start."""

    server: object  # pgserver.PostgresServer
    url: str

    async def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session cleanly; `immediate` is a crash (no shutdown checkpoint)."""
        from pgserver._commands import pg_ctl

        await asyncio.to_thread(
            pg_ctl,
            ["-w", "-m", mode, "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=30,
        )

    async def start(self) -> None:
        """Started again as pgserver started it: same socket directory, so the same URL."""
        from pgserver._commands import pg_ctl

        socket_dir = self.server.get_postmaster_info().socket_dir
        args = ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.server.log)]
        await asyncio.to_thread(
            pg_ctl,
            [*args, "start"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=30,
        )

    async def shut_down(self) -> None:
        """Stop the server whichever postmaster runs now (pgserver's cleanup only knows the one
        it started, not one a test started again after a crash), then clean up."""
        with contextlib.suppress(Exception):
            await self.stop("fast")
        await asyncio.to_thread(self.server.cleanup)

    def postmaster_pid(self) -> int | None:
        info = self.server.get_postmaster_info()
        return info.pid if info is not None else None

    def kill(self) -> None:
        """SIGKILL the postmaster: no session hears anything before its socket dies."""
        pid = self.postmaster_pid()
        if pid is not None:
            import os

            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[OwnPostgres]:
    import pgserver

    server = await asyncio.to_thread(
        pgserver.get_server, tmp_path / "pgdata", cleanup_mode="delete"
    )
    url = server.get_uri()
    conn = await asyncpg.connect(url)
    try:
        await database.migrate(conn)
    finally:
        await conn.close()
    own = OwnPostgres(server, url)
    yield own
    await own.shut_down()
