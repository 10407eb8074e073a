"""Request rate limits per user and per API key: GCRA (the generic cell rate algorithm).

One timestamp per key ("theoretical arrival time") gives a steady rate with a burst allowance
and the exact wait to announce in Retry-After. Kept in the process: each daemon enforces the
limit on the requests it serves.
"""

from __future__ import annotations

import time

from mta.throttle import Rate

# Keys idle this long are forgotten when the table is swept.
_SWEEP_EVERY = 10_000


class RateLimiter:
    def __init__(self, rate: str, burst: int) -> None:
        parsed = Rate.parse(rate)
        self.interval = parsed.per / parsed.count  # seconds between requests at the rate
        self.tolerance = self.interval * max(burst - 1, 0)
        self._tat: dict[str, float] = {}
        self._calls = 0

    def acquire(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        tat = max(self._tat.get(key, now), now)
        wait = tat - self.tolerance - now
        if wait > 0:
            return wait
        self._tat[key] = tat + self.interval
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return 0.0
