"""Writing the outcomes of delivery attempts: in batches, and through any database outage.

An outcome is the only record that a receiver has (or refused) a message; losing it means the
row is sent again. So outcomes are never dropped (issue 11): while PostgreSQL cannot take them
they stay in memory — bounded, since no new work is claimed meanwhile — and once the outage has
lasted `SPILL_AFTER` seconds they are also appended to a journal in the state directory, so a
daemon killed during the outage finds them again when it starts. Written outcomes leave both.

Writing is idempotent: `record-outcomes` applies an outcome only to a row no attempt has been
made on since (same attempt count), so a batch written twice (its commit acknowledged by a
connection that then broke), or replayed from the journal, changes nothing the second time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import orjson

from mta import queue
from mta.database import DATABASE_ERRORS
from mta.queue import Outcome, RecipientState

log = logging.getLogger("sendmill.delivery")

SPILL_AFTER = 5.0  # seconds of failed writes before outcomes are copied to the journal
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 2.0  # between write attempts while the database is away
BATCH = 1000  # outcomes per statement when catching up


class OutcomeJournal:
    """Outcomes not yet written, as JSON lines in a file of the state directory (one per node)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, outcomes: Sequence[Outcome]) -> None:
        """Append and fsync; raises OSError (a full disk) without leaving a torn line behind
        that `load` would not skip."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(orjson.dumps(_as_dict(o)) + b"\n" for o in outcomes)
        with self.path.open("ab") as f:
            size = f.tell()
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                f.truncate(size)  # no half line for the next append to run into
                raise

    def load(self) -> list[Outcome]:
        if not self.path.exists():
            return []
        outcomes = []
        for line in self.path.read_bytes().splitlines():
            try:
                outcomes.append(_from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # the torn end of a write the disk could not finish
        return outcomes

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class OutcomeWriter:
    """The outcomes of one delivery engine on their way to the database."""

    def __init__(self, db: asyncpg.Pool, node: str, journal: OutcomeJournal) -> None:
        self._db = db
        self._node = node
        self._journal = journal
        self._pending: list[Outcome] = []
        self._journaled = 0  # how many of `_pending` (from the front) the journal holds
        self._failing_since: float | None = None
        self.failures = 0  # consecutive failed writes

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def failing(self) -> bool:
        """The last write failed: the database is away, or was."""
        return self._failing_since is not None

    @property
    def backoff(self) -> float:
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, self.failures - 1))

    def add(self, outcome: Outcome) -> None:
        self._pending.append(outcome)

    def recipient_ids(self) -> set[int]:
        return {o.recipient_id for o in self._pending}

    def keep_on_disk(self) -> None:
        """At stop with the database away: the journal takes what is pending, for the next
        start of this node."""
        try:
            self._journal.append(self._pending[self._journaled :])
        except OSError as disk:
            log.error("delivery: %d outcomes lost: disk (%s)", len(self._pending), disk)
            return
        self._journaled = len(self._pending)

    async def replay(self) -> int:
        """At start: write the outcomes a previous run of this node left in its journal.
        Raises when the database cannot take them (the engine must not claim before)."""
        left = self._journal.load()
        for start in range(0, len(left), BATCH):
            await queue.record_outcomes(self._db, self._node, left[start : start + BATCH])
        self._journal.clear()
        if left:
            log.warning("delivery: wrote %d outcomes kept on disk by the last run", len(left))
        return len(left)

    async def write(self) -> list[Outcome]:
        """Write what is pending; returns the outcomes written (none when the database is away:
        they stay pending, and go to the journal once the outage lasts)."""
        if not self._pending:
            return []
        batch = list(self._pending)  # outcomes added while this write waits stay pending
        try:
            for start in range(0, len(batch), BATCH):
                await queue.record_outcomes(self._db, self._node, batch[start : start + BATCH])
        except DATABASE_ERRORS as exc:
            self._failed(exc)
            return []
        del self._pending[: len(batch)]
        if self._journaled:
            self._journal.clear()
            self._journaled = 0
        if self.failing:
            log.warning(
                "delivery: outcome writes resumed after %.1fs",
                time.monotonic() - (self._failing_since or 0.0),
            )
        self._failing_since = None
        self.failures = 0
        return batch

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self.failures += 1
        if self.failures == 1 or self.failures % 20 == 0:
            log.warning(
                "delivery: recording %d outcomes failed (%s); kept, retrying",
                len(self._pending),
                exc,
            )
        if now - self._failing_since >= SPILL_AFTER and self._journaled < len(self._pending):
            try:
                self._journal.append(self._pending[self._journaled :])
            except OSError as disk:
                log.error("delivery: outcomes cannot be kept on disk (%s); in memory only", disk)
                return
            self._journaled = len(self._pending)


def _as_dict(o: Outcome) -> dict:
    return {
        "id": o.recipient_id,
        "state": str(o.state),
        "reply": o.reply,
        "code": o.code,
        "mx": o.mx,
        "retry_in": o.retry_in,
        "ms": o.duration_ms,
        "counts": o.counts_as_attempt,
        "attempts": o.attempts,
    }


def _from_dict(d: dict) -> Outcome:
    return Outcome(
        d["id"],
        RecipientState(d["state"]),
        d["reply"],
        d["code"],
        d["mx"],
        d["retry_in"],
        d["ms"],
        d["counts"],
        d["attempts"],
    )
