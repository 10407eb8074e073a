"""Principals of recently seen credentials, kept for seconds and dropped the moment the
database says something about them changed.

Checking the session (or API key) in PostgreSQL on every request is what makes logout and
revocation immediate, and it was the largest single cost of a request. The cache keeps that
promise: triggers (control/schema/0007_principal_changes.sql) NOTIFY on every change that
can alter a principal — a session revoked, a user's role, activity or company changed, an
API key revoked or re-scoped — and one LISTENing connection per process empties the cache
when such a notification arrives. Until that connection listens, or after it is lost, the
cache is bypassed and every request asks the database again.

A generation number closes the race in which a request reads a principal just before a
revocation commits and would otherwise store it just after the cache was emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from control import metrics
from control.principal import Principal

log = logging.getLogger("sendmill.control.principals")
CHANGES_CHANNEL = "sendmill_principal_changes"
DEFAULT_TTL = 30.0  # a safety net only: notifications do the real work
MAX_ENTRIES = 50_000  # past this the cache starts over rather than grow
RETRY_SECONDS = 2.0


def _miss() -> Principal | None:
    """Count a miss; the answer of a miss (None)."""
    metrics.PRINCIPAL_CACHE.labels("miss").inc()
    return None


class PrincipalCache:
    def __init__(self, db: asyncpg.Pool, ttl: float = DEFAULT_TTL) -> None:
        self._db = db
        self._ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._generation = 0
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._conn is not None

    @property
    def generation(self) -> int:
        """Read before a database lookup and hand back to `put`."""
        return self._generation

    def get(self, credential: str, now: float | None = None) -> Principal | None:
        """The cached principal of `credential`, or None (also whenever not listening)."""
        if self._conn is None:
            self._ensure_listening()
            return _miss()
        entry = self._entries.get(credential)
        if entry is None:
            return _miss()
        principal, expires = entry
        if (time.time() if now is None else now) >= expires:
            del self._entries[credential]
            return _miss()
        metrics.PRINCIPAL_CACHE.labels("hit").inc()
        return principal

    def put(
        self, credential: str, principal: Principal, generation: int, expires: float | None = None
    ) -> None:
        """Remember `principal` until `expires` (a Unix time, e.g. the token's own expiry)
        or the TTL, whichever is first — unless something changed since `generation`."""
        if self._conn is None or generation != self._generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        until = time.time() + self._ttl
        self._entries[credential] = (principal, until if expires is None else min(until, expires))

    def invalidate(self) -> None:
        self._generation += 1
        self._entries.clear()

    # --- the LISTENing connection -------------------------------------------------------------

    def _ensure_listening(self) -> None:
        if self._task is None and not self._closed:
            with contextlib.suppress(RuntimeError):  # no running loop: stay a pass-through
                self._task = asyncio.get_running_loop().create_task(
                    self._listen(), name="control-principal-changes"
                )

    async def _listen(self) -> None:
        while not self._closed:
            try:
                conn = await self._db.acquire()
            except Exception as exc:
                log.warning("cannot listen for principal changes (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            lost = asyncio.Event()

            def on_lost(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                conn.add_termination_listener(on_lost)
                await conn.add_listener(CHANGES_CHANNEL, self._on_change)
                self.invalidate()  # whatever happened while nobody listened
                self._conn = conn
                await lost.wait()
                log.warning("lost the principal-changes listener; reconnecting")
            except Exception as exc:
                log.warning("cannot listen for principal changes (%s); retrying", exc)
            finally:
                self._conn = None
                self.invalidate()
                # On a terminated connection these may raise (the pool may have taken it back
                # already); none of it may end the loop.
                with contextlib.suppress(Exception):
                    conn.remove_termination_listener(on_lost)
                with contextlib.suppress(Exception):
                    await conn.remove_listener(CHANGES_CHANNEL, self._on_change)
                with contextlib.suppress(Exception):
                    await self._db.release(conn)
            if not self._closed:
                await asyncio.sleep(RETRY_SECONDS)

    def _on_change(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.invalidate()

    async def stop(self) -> None:
        self._closed = True
        self.invalidate()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
