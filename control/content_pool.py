"""CPU work on tenants' content (HTML parsing, MJML compiling, spam rules, text generation) in
worker processes, each call with a time limit (issue 12, High 2).

A thread would not do: it holds the GIL, and one tenant's hostile template would stall every
listener of the process — control API, tracker, HTTP submission — for as long as it runs. A
worker process runs beside the event loop; a call past its time limit kills the workers (nothing
else can stop running Python code) and is refused with `ContentCheckTimeout`; the next call
starts fresh workers. Workers are spawned, not forked: the daemon has threads and an event loop
a fork would copy half-way.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_PROCESSES = 2
DEFAULT_TIME_LIMIT = 10.0


class ContentCheckTimeout(Exception):
    """A content check ran past its time limit and was stopped."""

    def __init__(self, time_limit: float) -> None:
        self.time_limit = time_limit
        super().__init__(
            f"checking this content took longer than {time_limit:g} s and was stopped: "
            "simplify it (its stylesheets, nesting or size)"
        )


def _warm() -> None:
    # Import the checks once per worker, not on its first call's clock.
    import control.content_checks  # noqa: F401


class ContentPool:
    """Runs picklable functions in worker processes with a time limit per call."""

    def __init__(
        self, processes: int = DEFAULT_PROCESSES, time_limit: float = DEFAULT_TIME_LIMIT
    ) -> None:
        self.processes = processes
        self.time_limit = time_limit
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_warm
            )
        return self._executor

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker; ContentCheckTimeout past the time limit."""
        for attempt in (1, 2):
            executor = self._pool()
            future = asyncio.get_running_loop().run_in_executor(executor, function, *args)
            try:
                return await asyncio.wait_for(future, self.time_limit)
            except TimeoutError:
                self._kill(executor)
                raise ContentCheckTimeout(self.time_limit) from None
            except BrokenProcessPool:
                # Another call's time-out killed the workers this one waited for: once more.
                self._forget(executor)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _forget(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None

    def _kill(self, executor: ProcessPoolExecutor) -> None:
        self._forget(executor)
        # ProcessPoolExecutor cannot cancel a running call; terminating its workers can.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (at shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


_default = ContentPool()


def default_pool() -> ContentPool:
    """The process's pool; the control app sets its size and time limit from the config."""
    return _default


def configure(processes: int, time_limit: float) -> None:
    """Size the process's pool from the config (`control.content_check_*`)."""
    _default.processes = processes
    _default.time_limit = time_limit
