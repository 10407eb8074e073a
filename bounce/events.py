"""Bounce events: bounced, deferred, complained and unsubscribed recipients, with their evidence,
recorded in batches for the campaign and transactional analytics (bounce_events)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from bounce import metrics
from bounce.reasons import Reason
from mta.queries import Queries

SQL = Queries("bounce")


class EventKind(StrEnum):
    BOUNCED = "bounced"
    DEFERRED = "deferred"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


@dataclass(slots=True)
class BounceEvent:
    kind: EventKind
    reason: Reason
    hard: bool | None
    address: str  # lower-cased, '' when unknown
    source: str  # dsn, smtp, arf, mailto, webhook:<provider>
    company_id: int | None = None
    recipient_id: int | None = None
    campaign_id: int | None = None
    status: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    inbound_id: int | None = None
    list_id: int = 0  # unsubscribes: the list left (0 = every list of the company)

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def storable(text: str, limit: int = 4000) -> str:
    """Text PostgreSQL takes whatever a report contained: no NUL, no lone surrogates (what
    undecodable header bytes become), at most `limit` characters."""
    text = text[:limit]
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


async def record(conn: asyncpg.Connection, events: list[BounceEvent]) -> None:
    """Insert the events in one statement and count them."""
    if not events:
        return
    for e in events:  # in place: the policy applied next sees what was stored
        e.address = storable(e.address, 320)
        e.status = storable(e.status, 20)
        e.diagnostic = storable(e.diagnostic)
        e.remote_mta = storable(e.remote_mta, 255)
    await conn.execute(
        SQL["insert-events"],
        [e.company_id for e in events],
        [e.recipient_id for e in events],
        [e.campaign_id for e in events],
        [e.address for e in events],
        [e.domain for e in events],
        [e.kind.value for e in events],
        [e.reason.value for e in events],
        [e.hard for e in events],
        [e.status for e in events],
        [e.diagnostic for e in events],
        [e.remote_mta for e in events],
        [e.source for e in events],
        [e.inbound_id for e in events],
    )
    for e in events:
        metrics.BOUNCE_EVENTS.labels(e.kind.value, e.reason.value, e.source.split(":")[0]).inc()
