"""Tracking events: recorded off the request path, written to PostgreSQL in batches.

A request handler calls `EventWriter.record`, which appends to an in-memory buffer and returns
at once. A background task writes the buffer with COPY in batches of up to `batch_size`. When
PostgreSQL cannot be reached, the batch goes back to the front of the buffer and is retried with
backoff; the buffer is bounded (`buffer_size`), and an event arriving while it is full is
dropped and counted in `sendmill_tracker_events_dropped_total`, never lost silently.

Privacy is applied at write time, per tenant (`companies.settings`, key `tracking`):
    anonymize_ip   (default true)  IPv4 addresses kept to their /24, IPv6 to their /48
    per_recipient  (default true)  false: no recipient id and no IP are stored (aggregate only)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from mta.queries import Queries
from tracker import metrics

log = logging.getLogger("sendmill.tracker")
SQL = Queries("tracker")

COLUMNS = (
    "kind",
    "at",
    "company_id",
    "recipient_id",
    "campaign_id",
    "list_id",
    "link_index",
    "url",
    "user_agent",
    "ip",
    "machine",
    "machine_reason",
    "sent_at",
)
SETTINGS_TTL = 60.0  # seconds a company's privacy settings are cached by the writer
MAX_USER_AGENT = 512  # characters kept; longer strings are cut (they are not identities)
MAX_BACKOFF = 5.0


@dataclass(slots=True)
class Event:
    """One open, click or unsubscribe, as the request saw it."""

    kind: str  # open | click | unsubscribe
    at: float  # unix time of the request
    company_id: int
    recipient_id: int  # 0 = aggregate-only token
    campaign_id: int
    list_id: int
    user_agent: str
    ip: str | None
    machine_reason: str | None = None
    link_index: int | None = None
    url: str | None = None
    sent_at: int = 0


@dataclass(frozen=True, slots=True)
class Privacy:
    anonymize_ip: bool = True
    per_recipient: bool = True

    @classmethod
    def from_settings(cls, tracking: object) -> Privacy:
        if not isinstance(tracking, dict):
            return cls()
        return cls(
            anonymize_ip=tracking.get("anonymize_ip", True) is not False,
            per_recipient=tracking.get("per_recipient", True) is not False,
        )


_ADDRESSES: dict[str, tuple[bytes, bytes] | None] = {}
_ADDRESSES_MAX = 65536


def address_forms(ip: str) -> tuple[bytes, bytes] | None:
    """(the address, the address with its host part zeroed: /24 for IPv4, /48 for IPv6), both
    packed, or None if `ip` is not an address. Packed bytes are what asyncpg encodes without
    parsing text; both parsing steps were the largest cost of writing a batch, hence the cache."""
    hit = _ADDRESSES.get(ip, _MISSING)
    if hit is not _MISSING:
        return hit
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        forms = None
    else:
        prefix = 24 if address.version == 4 else 48
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        forms = (address.packed, network.network_address.packed)
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.clear()
    _ADDRESSES[ip] = forms
    return forms


def anonymize(ip: str) -> str | None:
    """The address with its host part zeroed (/24 for IPv4, /48 for IPv6), as text."""
    forms = address_forms(ip)
    return str(ipaddress.ip_address(forms[1])) if forms else None


_MISSING: Any = object()


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class EventWriter:
    """The bounded buffer and its background writer (one per tracker process)."""

    def __init__(
        self,
        db: asyncpg.Pool,
        buffer_size: int = 500_000,
        batch_size: int = 500,
        flush_interval: float = 0.1,
    ) -> None:
        self._db = db
        self._buffer: deque[Event] = deque()
        self.buffer_size = buffer_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._privacy: dict[int, tuple[float, Privacy]] = {}
        self.written = 0
        self.dropped = 0
        self._in_flight = 0  # events taken out of the buffer by the write under way
        self._stopping = False
        # called every loop turn (a few times a second): the app publishes its tallies here
        self.on_tick: Callable[[], None] | None = None

    @property
    def depth(self) -> int:
        """Events not yet written: buffered, and the batch being written."""
        return len(self._buffer) + self._in_flight

    def record(self, event: Event) -> bool:
        """Keep `event` for writing; False (and counted) when the buffer is full."""
        if len(self._buffer) + self._in_flight >= self.buffer_size:
            self.dropped += 1
            metrics.EVENTS_DROPPED.inc()
            return False
        self._buffer.append(event)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()
        return True

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tracker-events")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the background task and write what is buffered (within `grace` seconds)."""
        deadline = time.monotonic() + grace
        if self._task is not None:
            # let a write under way finish: cancelling COPY midway leaves its connection unusable
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, grace)
            self._task = None
        while self._buffer and time.monotonic() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self._buffer:
            log.error("tracker: %d events could not be written at shutdown", len(self._buffer))
            self.dropped += len(self._buffer)
            metrics.EVENTS_DROPPED.inc(len(self._buffer))
            self._buffer.clear()
        if self.on_tick is not None:
            self.on_tick()
        metrics.BUFFER_DEPTH.set(0)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            if len(self._buffer) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            if self.on_tick is not None:
                self.on_tick()
            metrics.BUFFER_DEPTH.set(len(self._buffer))
            if await self.flush():
                failures = 0
            else:
                failures += 1
                with contextlib.suppress(TimeoutError):  # back off, unless stopping
                    await asyncio.wait_for(self._wake.wait(), min(MAX_BACKOFF, 0.1 * 2**failures))

    # --- writing --------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Write one batch. False when the database failed (the batch is kept, in order)."""
        if not self._buffer:
            return True
        # Behind (a burst, or catching up after an outage): bigger batches, up to 20x, write
        # more per round trip; the pause they cost the event loop matters less than the backlog.
        depth = len(self._buffer)
        count = min(depth, max(self.batch_size, min(depth // 2, self.batch_size * 20)))
        batch = [self._buffer.popleft() for _ in range(count)]
        self._in_flight = count
        started = time.perf_counter()
        try:
            privacy = await self._privacy_of({e.company_id for e in batch})
            records = [self._row(e, privacy[e.company_id]) for e in batch]
            async with self._db.acquire() as conn:
                await conn.copy_records_to_table(
                    "tracking_events", records=records, columns=COLUMNS
                )
        except (asyncpg.DataError, ValueError, TypeError):
            # a row the database cannot take (a bug): retrying would block the buffer forever
            self._in_flight = 0
            self.dropped += count
            metrics.EVENTS_DROPPED.inc(count)
            log.exception("tracker: %d events could not be encoded; dropped", count)
            return True
        except Exception as exc:  # the database or the connection: keep the batch, retry
            # (besides OSError and PostgresError, asyncpg raises InterfaceError and
            # InternalClientError from connections the server dropped)
            self._in_flight = 0
            self._buffer.extendleft(reversed(batch))
            metrics.WRITE_FAILURES.inc()
            log.warning("tracker: writing %d events failed (%s); kept to retry", count, exc)
            return False
        self._in_flight = 0
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_WRITTEN.inc(count)
        self.written += count
        return True

    async def _privacy_of(self, companies: set[int]) -> dict[int, Privacy]:
        now = time.monotonic()
        found: dict[int, Privacy] = {}
        stale = []
        for company in companies:
            hit = self._privacy.get(company)
            if hit and hit[0] > now:
                found[company] = hit[1]
            else:
                stale.append(company)
        if stale:
            rows = await self._db.fetch(SQL["company-settings"], stale)
            loaded = {r["id"]: Privacy.from_settings(r["tracking"]) for r in rows}
            for company in stale:
                privacy = loaded.get(company, Privacy())
                self._privacy[company] = (now + SETTINGS_TTL, privacy)
                found[company] = privacy
        return found

    @staticmethod
    def _row(e: Event, privacy: Privacy) -> tuple:
        personal = privacy.per_recipient and e.recipient_id > 0
        ip = None
        if personal and e.ip:
            forms = address_forms(e.ip)  # also the check that it is an address at all
            if forms is not None:
                ip = forms[1] if privacy.anonymize_ip else forms[0]
        return (
            e.kind,
            _timestamp(e.at),
            e.company_id,
            e.recipient_id if personal else None,
            e.campaign_id or None,
            e.list_id or None,
            e.link_index,
            e.url,
            e.user_agent[:MAX_USER_AGENT],
            ip,
            e.machine_reason is not None,
            e.machine_reason,
            _timestamp(e.sent_at) if e.sent_at else None,
        )


# --- counts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindCounts:
    """Raw and human-only figures for one event kind of a campaign."""

    total: int = 0
    unique_recipients: int = 0
    human_total: int = 0
    human_unique_recipients: int = 0
    machine_total: int = 0


def _by_kind(rows: list[asyncpg.Record]) -> dict[str, KindCounts]:
    counts = {kind: KindCounts() for kind in ("open", "click", "unsubscribe")}
    for r in rows:
        counts[r["kind"]] = KindCounts(
            r["total"],
            r["unique_recipients"],
            r["human_total"],
            r["human_unique_recipients"],
            r["machine_total"],
        )
    return counts


async def campaign_counts(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, campaign_id: int
) -> dict[str, KindCounts]:
    """Opens, clicks and unsubscribes of a campaign: raw and human-only, totals and unique."""
    rows = await db.fetch(SQL["campaign-counts"], company_id, campaign_id)
    return _by_kind(rows)


async def campaigns_counts(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, campaign_ids: list[int]
) -> dict[str, KindCounts]:
    """`campaign_counts` summed over several campaigns of a company (dashboards)."""
    rows = await db.fetch(SQL["campaigns-counts"], company_id, campaign_ids)
    return _by_kind(rows)


@dataclass(frozen=True, slots=True)
class MachineReason:
    kind: str
    reason: str
    count: int


async def machine_reasons(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, campaign_id: int
) -> list[MachineReason]:
    """How many of a campaign's events each machine rule caught, most frequent first."""
    rows = await db.fetch(SQL["campaign-machine-reasons"], company_id, campaign_id)
    return [MachineReason(r["kind"], r["reason"] or "", r["count"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Bucket:
    at: datetime  # start of the hour or day (UTC)
    kind: str
    total: int
    human_total: int


TIMELINE_BUCKETS = ("hour", "day")


async def campaign_timeline(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, campaign_id: int, bucket: str
) -> list[Bucket]:
    """A campaign's events per hour or day and kind; empty buckets are left out."""
    if bucket not in TIMELINE_BUCKETS:
        raise ValueError(f"bucket must be one of {TIMELINE_BUCKETS}")
    rows = await db.fetch(SQL["campaign-timeline"], company_id, campaign_id, bucket)
    return [Bucket(r["at"], r["kind"], r["total"], r["human_total"]) for r in rows]


async def recipient_counts(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, recipient_id: int
) -> dict[str, tuple[int, int]]:
    """(total, human total) per event kind for one recipient row."""
    rows = await db.fetch(SQL["recipient-counts"], company_id, recipient_id)
    return {r["kind"]: (r["total"], r["human_total"]) for r in rows}


@dataclass(frozen=True, slots=True)
class LinkCounts:
    url: str
    link_index: int | None
    counts: KindCounts


async def campaign_links(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, campaign_id: int
) -> list[LinkCounts]:
    """A campaign's clicks per link: raw and human-only, totals and unique recipients."""
    rows = await db.fetch(SQL["campaign-links"], company_id, campaign_id)
    return [
        LinkCounts(
            r["url"] or "",
            r["link_index"],
            KindCounts(
                r["total"],
                r["unique_recipients"],
                r["human_total"],
                r["human_unique_recipients"],
                r["machine_total"],
            ),
        )
        for r in rows
    ]
