"""Request rate limits per user and per API key: GCRA (the generic cell rate algorithm).

One timestamp per key ("theoretical arrival time") gives a steady rate with a burst allowance
and the exact wait to announce in Retry-After. The timestamps live in a fixed table of slots
that the control API's processes share (`SharedRateTable`, shared memory under a lock), so a
user spreading connections over processes gets the limit once, not once per process. Each
daemon enforces the limit on the requests it serves.

A slot holds a 64-bit fingerprint of the key and its timestamp; a key probes a few slots from
its hash. When all are taken by live keys, the one that frees soonest is reused: under a flood
of distinct keys a limit is forgotten early, never applied to the wrong key.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from multiprocessing import shared_memory
from typing import Any

from mta.throttle import Rate

SLOTS = 1 << 16  # 65,536 keys at once: 1 MiB
PROBES = 8
_SLOT = struct.Struct("<Qd")  # fingerprint, theoretical arrival time (monotonic seconds)


def table_size(slots: int = SLOTS) -> int:
    return slots * _SLOT.size


class SharedRateTable:
    """The slots, in memory of this process (`name` None) or in the shared memory block
    `name` created by the daemon; `lock` (a multiprocessing lock) when shared."""

    def __init__(self, name: str | None = None, lock: Any = None, slots: int = SLOTS) -> None:
        self.slots = slots
        self._shm: shared_memory.SharedMemory | None = None
        if name is None:
            self._buffer: Any = bytearray(table_size(slots))
        else:
            # Spawned processes share the daemon's resource tracker, which unlinks the block
            # if the daemon dies without doing it.
            self._shm = shared_memory.SharedMemory(name=name)
            self._buffer = self._shm.buf
        self._lock = lock if lock is not None else contextlib.nullcontext()

    @staticmethod
    def create_block(slots: int = SLOTS) -> shared_memory.SharedMemory:
        """A new zeroed block for the daemon to hand its processes by name; the daemon
        unlinks it when they have stopped."""
        block = shared_memory.SharedMemory(create=True, size=table_size(slots))
        buffer = block.buf
        assert buffer is not None  # a block just created is open
        buffer[:] = bytes(table_size(slots))
        return block

    def close(self) -> None:
        if self._shm is not None:
            self._buffer = None
            self._shm.close()
            self._shm = None

    def update(self, key: str, now: float, interval: float, tolerance: float) -> float:
        """GCRA for `key` at `now`: 0 and the request counted, or the seconds to wait."""
        fingerprint = (
            int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
        )
        start = fingerprint % self.slots
        buf, size = self._buffer, _SLOT.size
        with self._lock:
            chosen, chosen_tat = -1, float("inf")
            tat = now
            for i in range(PROBES):
                slot = (start + i) % self.slots
                fp, slot_tat = _SLOT.unpack_from(buf, slot * size)
                if fp == fingerprint:
                    chosen, tat = slot, max(slot_tat, now)
                    break
                # a free slot, or the live key that frees soonest
                if fp == 0 or slot_tat <= now:
                    slot_tat = -1.0
                if slot_tat < chosen_tat:
                    chosen, chosen_tat = slot, slot_tat
            wait = tat - tolerance - now
            if wait > 0:
                return wait
            _SLOT.pack_into(buf, chosen * size, fingerprint, tat + interval)
            return 0.0


class RateLimiter:
    def __init__(self, rate: str, burst: int, table: SharedRateTable | None = None) -> None:
        parsed = Rate.parse(rate)
        self.interval = parsed.per / parsed.count  # seconds between requests at the rate
        self.tolerance = self.interval * max(burst - 1, 0)
        self.table = table or SharedRateTable()

    def acquire(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        return self.table.update(key, now, self.interval, self.tolerance)
