"""Running the control API: its own listener, inside the daemon or in several processes.

With `[control] processes = 1` the daemon's main process serves the control API beside
intake, on the daemon's pool. With more, the daemon spawns that many processes; each binds the
same address with SO_REUSEPORT (the kernel spreads connections over them) and opens its own
pool. They share the request-rate table (shared memory, control/ratelimit.py) and learn of
revocations from PostgreSQL (control/principal_cache.py), so a user sees one API whichever
process answers. One process serves about 550 requests a second of bench/api's mix on this
hardware; the API's p95 under 500 users wants two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import asyncpg

from control.app import create_app
from control.ratelimit import SharedRateTable
from mta import database
from mta.config import Config
from mta.logs import setup_logging
from mta.reuseport import BACKLOG, listening_socket
from mta.secret import server_secret

log = logging.getLogger("sendmill.control")


class ControlServer:
    """One process's control API: the app under uvicorn on a SO_REUSEPORT socket."""

    def __init__(
        self, config: Config, db: asyncpg.Pool, rates: SharedRateTable | None = None
    ) -> None:
        self.config = config
        self.app = create_app(db, config, server_secret(config), rates)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import uvicorn

        assert self.config.control.listen is not None
        sock = listening_socket(self.config.control.listen, 8080, "control.listen")
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                access_log=False,
                lifespan="off",
                backlog=BACKLOG,
                timeout_keep_alive=30,
            )
        )
        server.capture_signals = contextlib.nullcontext  # the daemon owns SIGTERM
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="control-http")
        while not server.started and not self._task.done():  # noqa: ASYNC110 (uvicorn's flag)
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # raise the reason it could not start

    async def stop(self, grace: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, grace)
        services = self.app.state.services
        await services.hub.stop()
        await services.auth.principals.stop()


# --- spawned control API processes -----------------------------------------------------------


def control_process_main(config: Config, index: int, rates_name: str, rates_lock: Any) -> None:
    """Entry point of a spawned control API process."""
    setup_logging(config.log.level, config.log.format)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_control_process(config, index, SharedRateTable(rates_name, rates_lock)))


async def _control_process(config: Config, index: int, rates: SharedRateTable) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    url = await database.resolve_url(config)
    db = await database.connect(url, config.database.pool_size)
    server = ControlServer(config, db, rates)
    await server.start()
    log.info("control API process %d listening on %s", index, config.control.listen)
    await stop.wait()
    await server.stop()
    await db.close()
    rates.close()
