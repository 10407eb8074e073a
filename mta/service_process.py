"""The life of a service process the daemon spawns (delivery, tracker, control API): logging,
uvloop, then its body until SIGTERM or SIGINT — or until the daemon itself is gone.

A process that outlived a daemon killed with SIGKILL would go on serving with the old
configuration beside the restarted daemon's processes (SO_REUSEPORT lets both bind), so each
one watches its parent and stops when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import Awaitable, Callable

from mta.config import Config
from mta.logs import setup_logging


def run_process(config: Config, body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `body(stop)`; `stop` is set by SIGTERM, SIGINT or the death of the parent."""
    setup_logging(config.log.level, config.log.format)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        parent = multiprocessing.parent_process()
        if parent is not None:  # its sentinel reads EOF once the parent has exited
            loop.add_reader(parent.sentinel, stop.set)
        await body(stop)

    asyncio.run(main())
