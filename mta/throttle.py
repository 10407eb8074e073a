"""Per-destination delivery shaping: rates, token buckets, adaptive back-off and a fair queue.

A pure engine in the manner of KumoMTA's `crates/throttle`: no I/O, no asyncio, no clock. Every
call that depends on time takes `now`, a float in seconds from any monotonic clock, so the
delivery dispatcher owns the clock and tests simulate it.

- `Rate` is a spec such as "100/h" that parses and prints back the same.
- `TokenBucket` grants messages at a rate with a small burst, and says how long to wait.
- `SiteThrottle` is the shaping state of one destination site: connection and rate limits that
  shrink when the site pushes back (421, runs of 4xx) and grow back slowly (AIMD, as TCP).
- `site_key` groups domains that share MX hosts into one site, hence one budget.
- `FairQueue` orders a site's ready mail: transactional before bulk, round-robin between
  senders, so one tenant's campaign cannot hold back another's password resets (Postal #173).
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "FLOOR_RATE",
    "FairQueue",
    "Rate",
    "RateError",
    "SiteThrottle",
    "TokenBucket",
    "site_key",
]


# --- rates ---------------------------------------------------------------------------------------

_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_CANONICAL_UNIT: dict[float, str] = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}
# Same grammar as the config loader's check (mta/config.py): no sign, no exponent, no nan/inf.
_COUNT = re.compile(r"\d+(?:\.\d+)?")
_EXPECTED = "expected '<count>/<unit>' such as '100/h', unit s, m, h or d (or sec, min, hour, day)"


class RateError(ValueError):
    """A rate spec that does not parse, or a rate that is not positive and finite."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` messages per `per` seconds, e.g. `Rate(100, 3600)` is "100/h"."""

    count: float
    per: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.count) and self.count > 0):
            raise RateError(f"rate count must be a positive number, got {self.count!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise RateError(f"rate period must be a positive number of seconds, got {self.per!r}")

    @classmethod
    def parse(cls, spec: str) -> Rate:
        """Parse "N/s", "N/m", "N/h" or "N/d" (also /sec, /min, /hour, /day); N may be decimal."""
        count_text, slash, unit_text = spec.partition("/")
        count_text, unit_text = count_text.strip(), unit_text.strip()
        if not slash or not count_text or not unit_text:
            raise RateError(f"invalid rate {spec!r}: {_EXPECTED}")
        if not _COUNT.fullmatch(count_text):
            raise RateError(f"invalid rate {spec!r}: the count {count_text!r} is not a number")
        per = _UNITS.get(unit_text)
        if per is None:
            raise RateError(f"invalid rate {spec!r}: unknown unit {unit_text!r}; {_EXPECTED}")
        count = float(count_text)
        if count <= 0:
            raise RateError(f"invalid rate {spec!r}: the count must be greater than zero")
        return cls(count, per)

    @property
    def per_second(self) -> float:
        return self.count / self.per

    def __str__(self) -> str:
        unit = _CANONICAL_UNIT.get(self.per)
        if unit is None:
            # A period that is not a whole unit (built in code, never parsed) prints per second,
            # which parses back to the same per-second rate.
            return f"{_number(self.per_second)}/s"
        return f"{_number(self.count)}/{unit}"


def _number(x: float) -> str:
    """100.0 -> "100", 12.5 -> "12.5": the shortest text that parses back to the same float."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# The slowest an adaptive back-off goes: slow enough to calm any site, fast enough to keep
# probing it so recovery has successes to feed on. A configured rate below it is kept as is.
FLOOR_RATE = Rate(1, 60)


# --- token bucket --------------------------------------------------------------------------------

# Grant when the tokens missing would arrive within a microsecond: without this tolerance,
# float rounding can leave 0.9999999 tokens after waiting exactly the returned delay, and a
# caller that adds the delay to a large `now` may not move the clock at all.
_EPSILON_SECONDS = 1e-6


class TokenBucket:
    """Tokens accrue at `rate` up to `capacity`; a message takes one. Starts full.

    `capacity` is the burst: by default about one second of the rate, and at least 1 so a slow
    rate such as "100/h" still lets a message through now and then.
    """

    __slots__ = ("_capacity", "_explicit_capacity", "_rate", "_tokens", "_updated")

    def __init__(self, rate: Rate, capacity: float | None = None) -> None:
        if capacity is not None and not capacity >= 1:
            raise ValueError(f"token bucket capacity must be at least 1, got {capacity!r}")
        self._rate = rate
        self._explicit_capacity = capacity
        self._capacity = capacity if capacity is not None else _default_capacity(rate)
        self._tokens = self._capacity
        self._updated: float | None = None  # the first call fixes the time origin

    @property
    def rate(self) -> Rate:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    def tokens(self, now: float) -> float:
        """Tokens available at `now`."""
        self._refill(now)
        return self._tokens

    def peek(self, now: float, n: float = 1) -> float:
        """Seconds until `n` tokens are available (0.0 if they are now); consumes nothing."""
        self._check(n)
        self._refill(now)
        wait = (n - self._tokens) / self._rate.per_second
        return 0.0 if wait <= _EPSILON_SECONDS else wait

    def take(self, now: float, n: float = 1) -> float:
        """Take `n` tokens and return 0.0, or return the seconds to wait and take nothing."""
        wait = self.peek(now, n)
        if wait == 0.0:
            self._tokens = max(0.0, self._tokens - n)
        return wait

    def set_rate(self, rate: Rate, now: float | None = None) -> None:
        """Change the rate, keeping the tokens already accrued (up to the new capacity).

        With `now`, time elapsed so far accrues at the old rate first; without it, it will
        accrue at the new one.
        """
        if now is not None:
            self._refill(now)
        self._rate = rate
        if self._explicit_capacity is None:
            self._capacity = _default_capacity(rate)
        # A slower rate has a smaller burst: tokens saved at the fast rate must not let a
        # site that just pushed back receive a burst sized for the old rate.
        self._tokens = min(self._tokens, self._capacity)

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            accrued = (now - self._updated) * self._rate.per_second
            self._tokens = min(self._capacity, self._tokens + accrued)
        # A clock that steps back gives nothing and does not move the origin back.
        if self._updated is None or now > self._updated:
            self._updated = now

    def _check(self, n: float) -> None:
        if not 0 < n <= self._capacity:
            raise ValueError(f"cannot take {n!r} tokens from a bucket of capacity {self._capacity}")


def _default_capacity(rate: Rate) -> float:
    return max(1.0, rate.per_second)


# --- observed throughput -------------------------------------------------------------------------


class _Throughput:
    """Messages started per second over the last few seconds (per-second buckets)."""

    WINDOW = 10  # seconds

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, now: float) -> None:
        second = math.floor(now)
        if self._buckets and self._buckets[-1][0] >= second:
            self._buckets[-1][1] += 1  # same second (or a clock step back)
        else:
            self._buckets.append([second, 1])
        self._prune(now)

    def per_second(self, now: float) -> float:
        self._prune(now)
        if not self._buckets:
            return 0.0
        total = sum(count for _, count in self._buckets)
        # Divide by the time actually covered, so a burst that started two seconds ago is not
        # diluted over the whole window.
        span = min(float(self.WINDOW), max(1.0, now - self._buckets[0][0]))
        return total / span

    def _prune(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.WINDOW - 1:
            self._buckets.popleft()


# --- site throttle -------------------------------------------------------------------------------

DEFERRAL_RUN = 3  # consecutive 4xx replies that count as the site pushing back
COOLDOWN_SECONDS = 60.0  # after a back-off, no increase for this long
# Pushback within this many seconds of a back-off belongs to the same event: when ten open
# connections all get a 421 together, the limits halve once, not ten times.
BACKOFF_GAP_SECONDS = 10.0
# After the cool-down, a success may raise the limits by one step per interval: one more
# connection and a tenth of the configured rate: a halved site is whole 50 s after its cool-down.
RECOVERY_INTERVAL_SECONDS = 10.0
RECOVERY_STEPS = 10


class SiteThrottle:
    """The shaping state of one destination site: its limits, their adaptive values, its use.

    Configured limits are `connections`, `messages_per_connection` and `rate` (None: no rate
    limit). The *effective* limits start there and follow AIMD:

    - back-off: a 421 (or a refused connection), or `deferral_run` consecutive 4xx replies,
      halves the effective connection limit (never below 1) and the effective rate (never below
      `floor_rate`, or the configured rate if that is lower), and starts a cool-down;
    - a site without a configured rate is halved from the throughput observed over the last
      10 seconds, which then becomes the ceiling recovery climbs back to before the limit is
      lifted; with no throughput observed (a 421 on the first connection), only the
      connection limit is halved, since there is nothing to halve the rate from;
    - recovery: after the cool-down, a success raises the limits by one step at most every
      `recovery_interval` seconds (one connection, a tenth of the ceiling rate), never above
      the configured limits.

    `messages_per_connection` is not adapted; it is carried for the dispatcher.
    """

    __slots__ = (
        "_active",
        "_backed_off_at",
        "_bucket",
        "_ceiling",
        "_cooldown_until",
        "_effective_connections",
        "_effective_rate",
        "_last_step",
        "_run",
        "_throughput",
        "backoff_gap",
        "backoffs",
        "connections",
        "cooldown",
        "deferral_run",
        "floor_rate",
        "messages_per_connection",
        "rate",
        "recovery_interval",
    )

    def __init__(
        self,
        connections: int,
        messages_per_connection: int,
        rate: Rate | None = None,
        *,
        deferral_run: int = DEFERRAL_RUN,
        cooldown: float = COOLDOWN_SECONDS,
        backoff_gap: float = BACKOFF_GAP_SECONDS,
        recovery_interval: float = RECOVERY_INTERVAL_SECONDS,
        floor_rate: Rate = FLOOR_RATE,
    ) -> None:
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections!r}")
        if messages_per_connection < 1:
            raise ValueError(
                f"messages_per_connection must be at least 1, got {messages_per_connection!r}"
            )
        if deferral_run < 1:
            raise ValueError(f"deferral_run must be at least 1, got {deferral_run!r}")
        self.connections = connections
        self.messages_per_connection = messages_per_connection
        self.rate = rate
        self.deferral_run = deferral_run
        self.cooldown = cooldown
        self.backoff_gap = backoff_gap
        self.recovery_interval = recovery_interval
        self.floor_rate = floor_rate

        self._effective_connections = connections
        self._effective_rate = rate
        # What rate recovery climbs back to: the configured rate, or the observed throughput
        # at the first back-off of a site without one.
        self._ceiling = rate
        self._bucket = TokenBucket(rate) if rate is not None else None
        self._throughput = _Throughput()
        self._active = 0
        self._run = 0  # consecutive 4xx replies
        self._backed_off_at: float | None = None
        self._cooldown_until = -math.inf
        self._last_step = -math.inf
        self.backoffs = 0  # back-off events since start, for logs

    # -- state ------------------------------------------------------------------------------------

    @property
    def effective_connections(self) -> int:
        return self._effective_connections

    @property
    def effective_rate(self) -> Rate | None:
        return self._effective_rate

    @property
    def active_connections(self) -> int:
        return self._active

    @property
    def slowed(self) -> bool:
        """True while the effective limits are below the configured ones."""
        return self._effective_connections < self.connections or self._effective_rate != self.rate

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Plain values for metrics and logs; with `now`, the cool-down time left."""
        snap: dict[str, Any] = {
            "connections": self.connections,
            "effective_connections": self._effective_connections,
            "active_connections": self._active,
            "messages_per_connection": self.messages_per_connection,
            "rate": _rate_text(self.rate),
            "effective_rate": _rate_text(self._effective_rate),
            "slowed": self.slowed,
            "deferral_run": self._run,
            "backoffs": self.backoffs,
        }
        if now is not None:
            snap["cooldown_remaining"] = max(0.0, self._cooldown_until - now)
            snap["throughput_per_second"] = self._throughput.per_second(now)
        return snap

    # -- connections ------------------------------------------------------------------------------

    def can_open_connection(self) -> bool:
        """Whether another connection fits under the effective connection limit."""
        return self._active < self._effective_connections

    def connection_opened(self) -> None:
        self._active += 1

    def connection_closed(self) -> None:
        self._active = max(0, self._active - 1)

    # -- messages ---------------------------------------------------------------------------------

    def reserve_message(self, now: float) -> float:
        """Reserve the start of one message: 0.0 to go now, else seconds to wait, then ask again.

        Nothing is reserved when a wait is returned.
        """
        if self._bucket is not None:
            wait = self._bucket.take(now)
            if wait:
                return wait
        self._throughput.add(now)
        return 0.0

    def wait_hint(self, now: float) -> float:
        """Seconds until a message may start, as far as the rate goes; reserves nothing.

        Connections do not enter into it: the throttle cannot tell whether an open connection
        is idle, and a full connection limit does not stop mail on the open ones.
        """
        return self._bucket.peek(now) if self._bucket is not None else 0.0

    # -- outcomes ---------------------------------------------------------------------------------

    def record_success(self, now: float) -> None:
        """A message was accepted: ends a 4xx run and, after the cool-down, recovers a step."""
        self._run = 0
        if not self.slowed or now < self._cooldown_until:
            return
        if now - self._last_step < self.recovery_interval:
            return
        self._last_step = now
        self._effective_connections = min(self.connections, self._effective_connections + 1)
        if self._effective_rate is not None and self._ceiling is not None:
            ceiling = self._ceiling
            count = self._effective_rate.count + ceiling.count / RECOVERY_STEPS
            if count >= ceiling.count:
                # Back at the top: the configured rate exactly (no float drift), or no limit
                # at all for a site that never had one.
                self._set_rate(self.rate, now)
                if self.rate is None:
                    self._ceiling = None
            else:
                self._set_rate(Rate(count, ceiling.per), now)

    def record_deferral(self, now: float, code: int) -> None:
        """A 4xx reply: a 421 backs off at once, other codes after a run of `deferral_run`."""
        if not 400 <= code < 500:
            raise ValueError(f"a deferral is a 4xx reply, got {code!r}")
        if code == 421:
            self.record_421(now)
            return
        self._run += 1
        if self._run >= self.deferral_run:
            self._back_off(now)

    def record_421(self, now: float) -> None:
        """A 421 reply or a refused connection: the site says slow down (RFC 5321 §4.2.3)."""
        self._back_off(now)

    def _back_off(self, now: float) -> None:
        self._run = 0
        self._cooldown_until = max(self._cooldown_until, now + self.cooldown)
        if self._backed_off_at is not None and now - self._backed_off_at < self.backoff_gap:
            return  # the same event as the last back-off: it only prolongs the cool-down
        self._backed_off_at = now
        self.backoffs += 1
        self._effective_connections = max(1, self._effective_connections // 2)
        current = self._effective_rate
        if current is None:
            observed = self._throughput.per_second(now)
            if observed <= 0:
                return
            # Per minute, so logs read "45/m" rather than "0.75/s".
            self._ceiling = current = Rate(observed * 60, 60)
        ceiling = self._ceiling if self._ceiling is not None else current
        floor = min(self.floor_rate.per_second, ceiling.per_second) * current.per
        self._set_rate(Rate(max(floor, current.count / 2), current.per), now)

    def _set_rate(self, rate: Rate | None, now: float) -> None:
        self._effective_rate = rate
        if rate is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = TokenBucket(rate)
        else:
            self._bucket.set_rate(rate, now)


def _rate_text(rate: Rate | None) -> str | None:
    return str(rate) if rate is not None else None


# --- sites ---------------------------------------------------------------------------------------


def site_key(mx_hosts: Sequence[str]) -> str:
    """The site of a domain: its MX host names, lower-cased, without the root dot, sorted.

    Domains with the same MX hosts (every Google Workspace domain, say) share one site, and
    so one connection and rate budget, as the receiving side sees them as one (KumoMTA's
    "site name"). Preferences are left out: the same hosts are the same site.
    """
    names = sorted({host.strip().lower().rstrip(".") for host in mx_hosts} - {""})
    if not names:
        raise ValueError("a site needs at least one MX host name")
    return "(" + ",".join(names) + ")"


# --- fair queue ----------------------------------------------------------------------------------

T = TypeVar("T")


class _Level(Generic[T]):
    """One priority: a FIFO per sender, and the senders with items in round-robin order."""

    __slots__ = ("items", "turns")

    def __init__(self) -> None:
        self.items: dict[Hashable, deque[T]] = {}
        self.turns: deque[Hashable] = deque()


class FairQueue(Generic[T]):
    """A site's ready queue: lower priority number first (0 transactional, 1 bulk), then
    round-robin between senders, FIFO for each sender. Push and pop are O(1) amortised
    (for the handful of priority levels there are).
    """

    __slots__ = ("_counts", "_len", "_levels", "_order")

    def __init__(self) -> None:
        self._levels: dict[int, _Level[T]] = {}
        self._order: list[int] = []  # priorities seen, ascending
        self._counts: dict[Hashable, int] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, sender: Hashable, priority: int, item: T) -> None:
        """Queue `item` behind `sender`'s earlier items of the same priority."""
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level()
            self._order.append(priority)
            self._order.sort()
        queue = level.items.get(sender)
        if queue is None:
            # A sender with nothing queued joins at the back of the rotation.
            queue = level.items[sender] = deque()
            level.turns.append(sender)
        queue.append(item)
        self._counts[sender] = self._counts.get(sender, 0) + 1
        self._len += 1

    def pop(self) -> T:
        """The next item; IndexError when the queue is empty."""
        for priority in self._order:
            level = self._levels[priority]
            if level.turns:
                break
        else:
            raise IndexError("pop from an empty FairQueue")
        sender = level.turns.popleft()
        queue = level.items[sender]
        item = queue.popleft()
        if queue:
            level.turns.append(sender)
        else:
            del level.items[sender]
        left = self._counts[sender] - 1
        if left:
            self._counts[sender] = left
        else:
            del self._counts[sender]
        self._len -= 1
        return item

    def count_by_sender(self) -> dict[Hashable, int]:
        """Items queued per sender, all priorities together."""
        return dict(self._counts)
