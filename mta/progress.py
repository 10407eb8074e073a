"""Progress of long command-line work, on stderr: a line redrawn in place on a terminal, or a
plain line every few seconds when stderr is a file or a pipe (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`update(done, total)` as work advances, `finish()` at the end."""

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._every = every
        self._last = 0.0
        self._started = time.monotonic()
        self._shown = False

    def update(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if not self._tty and now - self._last < self._every:
            return
        self._last = now
        self._write(self._line(done, total, now))

    def finish(self, done: int, total: int | None = None) -> None:
        self._write(self._line(done, total, time.monotonic()))
        if self._tty and self._shown:
            self._stream.write("\n")
            self._stream.flush()

    def _line(self, done: int, total: int | None, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        if total:
            share = min(100.0, 100.0 * done / total)
            return f"{self.label}: {done:,}/{total:,} ({share:.0f}%), {rate:,.0f}/s"
        return f"{self.label}: {done:,}, {rate:,.0f}/s"

    def _write(self, line: str) -> None:
        self._shown = True
        if self._tty:
            self._stream.write("\r\033[K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
