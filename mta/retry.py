"""What an attempt's reply means for a recipient: delivered, bounced, deferred or expired.

2xx delivers, 5xx bounces, 4xx (and connection failures) defer on the retry schedule until the
maximum age, after which the recipient expires — a bounce that says how long we tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from mta.queue import RecipientState


class RetryPolicy:
    def __init__(self, schedule: Sequence[float], max_age: float) -> None:
        self.schedule = tuple(schedule)
        self.max_age = max_age

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th attempt (1-based); the last step repeats."""
        return self.schedule[min(max(attempts, 1), len(self.schedule)) - 1]

    def decide(
        self, code: int, attempts_before: int, expires_at: datetime, now: datetime
    ) -> tuple[RecipientState, float | None]:
        """The new state for a reply `code`, and the retry delay when deferred."""
        if 200 <= code < 300:
            return RecipientState.DELIVERED, None
        if code >= 500:
            return RecipientState.BOUNCED, None
        delay = self.delay_after(attempts_before + 1)
        if now + timedelta(seconds=delay) >= expires_at:
            return RecipientState.EXPIRED, None
        return RecipientState.DEFERRED, delay


def expired_reply(last_reply: str, attempts: int) -> str:
    """The final reply of an expired recipient: the last error and how long we tried."""
    return f"{last_reply} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
