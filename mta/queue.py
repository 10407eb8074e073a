"""The durable queue: messages stored once, one row per envelope recipient, claimed with leases.

A submission is acknowledged only after `enqueue` returns: the single INSERT statement has
committed by then. Delivery nodes `claim` due rows with `FOR UPDATE SKIP LOCKED` and a lease,
so several daemons on one database share the work without sending anything twice, and a node
that dies leaves leases that `retake_expired_leases` gives back to the queue.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mta.dns import to_ascii
from mta.queries import Queries

SQL = Queries("mta")


class RecipientState(enum.StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    HELD = "held"
    CANCELLED = "cancelled"  # its campaign was cancelled before it was attempted

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {
        RecipientState.DELIVERED,
        RecipientState.BOUNCED,
        RecipientState.EXPIRED,
        RecipientState.SUPPRESSED,
        RecipientState.CANCELLED,
    }
)


@dataclass(frozen=True, slots=True)
class Submission:
    """A message accepted from a client, ready to be queued."""

    company_id: int
    credential_id: int | None
    mail_from: str
    from_domain: str
    recipients: Sequence[str]
    body: bytes
    message_id: str | None = None
    smtputf8: bool = False
    eight_bit: bool = False
    priority: int = 0  # 0 transactional, 1 bulk
    hold: bool = False
    category: str = "transactional"  # or "marketing": honours unsubscriptions
    campaign_id: int | None = None
    list_id: int | None = None


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    id: int
    message_id: int
    recipient: str
    state: str


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    """A recipient row leased to this node for one delivery attempt."""

    id: int
    message_id: int
    company_id: int
    recipient: str
    domain: str
    priority: int
    attempts: int
    expires_at: datetime
    created_at: datetime
    contact_id: int | None = None  # campaign mail: the contact it is rendered for


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    company_id: int
    mail_from: str
    from_domain: str
    message_id: str | None
    body: bytes
    smtputf8: bool
    eight_bit: bool
    # campaign mail: rendered per recipient from this version (the body is empty)
    campaign_version_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt for one recipient, to be recorded."""

    recipient_id: int
    state: RecipientState
    reply: str
    code: int | None = None
    mx: str | None = None
    retry_in: float | None = None  # seconds until the next attempt when deferred
    duration_ms: int = 0
    counts_as_attempt: bool = True
    # The row's attempt count when it was claimed: the outcome applies only while it still is
    # (nobody attempted the row since), which makes writing an outcome twice harmless.
    attempts: int = 0


def recipient_domain(address: str) -> str:
    """The lower-cased, IDNA-encoded domain of an address (for routing and grouping)."""
    return to_ascii(address.rpartition("@")[2])


async def enqueue(
    db: asyncpg.Pool | asyncpg.Connection, submission: Submission, max_age: float
) -> list[QueuedRecipient]:
    """Queue a message for its recipients; returns one row per recipient, in order."""
    rows = await db.fetch(
        SQL["enqueue-message"],
        submission.company_id,
        submission.credential_id,
        submission.mail_from,
        submission.from_domain,
        submission.message_id,
        submission.body,
        submission.smtputf8,
        submission.eight_bit,
        list(submission.recipients),
        [recipient_domain(r) for r in submission.recipients],
        submission.priority,
        max_age,
        "held" if submission.hold else "queued",
        submission.category,
        submission.campaign_id,
        submission.list_id,
    )
    return [QueuedRecipient(r["id"], r["message_id"], r["recipient"], r["state"]) for r in rows]


async def claim(
    db: asyncpg.Pool | asyncpg.Connection,
    node: str,
    limit: int,
    lease: float,
    per_company: int | None = None,
    skip_domains: Sequence[str] = (),
) -> list[ClaimedRecipient]:
    """Lease up to `limit` due recipients to `node`, fairly across companies."""
    rows = await db.fetch(
        SQL["claim-due-recipients"],
        limit,
        per_company or limit,
        lease,
        node,
        list(skip_domains),
    )
    return [ClaimedRecipient(**dict(r)) for r in rows]


async def fetch_messages(db: asyncpg.Pool | asyncpg.Connection, ids: Sequence[int]) -> dict:
    rows = await db.fetch(SQL["fetch-messages"], list(ids))
    return {r["id"]: StoredMessage(**dict(r)) for r in rows}


async def blocked_recipients(
    db: asyncpg.Pool | asyncpg.Connection, recipient_ids: Sequence[int]
) -> dict[int, str]:
    """Recipient rows that must not be contacted (suppressed, or unsubscribed marketing), with
    the reason."""
    rows = await db.fetch(SQL["blocked-recipients"], list(recipient_ids))
    return {r["id"]: r["reason"] for r in rows}


async def record_outcomes(
    db: asyncpg.Pool | asyncpg.Connection, node: str, outcomes: Sequence[Outcome]
) -> None:
    """Apply outcomes in one statement; rows no longer leased by `node` are left alone."""
    if not outcomes:
        return
    await db.execute(
        SQL["record-outcomes"],
        node,
        [o.recipient_id for o in outcomes],
        [str(o.state) for o in outcomes],
        [o.retry_in for o in outcomes],
        [o.mx for o in outcomes],
        [o.code for o in outcomes],
        [o.reply for o in outcomes],
        [o.duration_ms for o in outcomes],
        [o.counts_as_attempt for o in outcomes],
        [o.attempts for o in outcomes],
    )


async def release(
    db: asyncpg.Pool | asyncpg.Connection, node: str, ids: Sequence[int], delay: float = 0.0
) -> None:
    """Give back leased rows that were not attempted, without counting an attempt."""
    if ids:
        await db.execute(SQL["release-leases"], node, list(ids), delay)


async def withdraw(
    db: asyncpg.Pool | asyncpg.Connection, node: str, ids: Sequence[int], state: RecipientState
) -> None:
    """Rows leased and not attempted whose campaign was paused (HELD) or cancelled."""
    if ids:
        await db.execute(SQL["withdraw-leases"], node, list(ids), str(state))


async def release_message_held(db: asyncpg.Pool | asyncpg.Connection, message_id: int) -> None:
    await db.execute(SQL["release-message-held"], message_id)


async def renew_leases(
    db: asyncpg.Pool | asyncpg.Connection, node: str, lease: float, held: Sequence[int]
) -> None:
    """Extend the leases of the rows `node` is working on (`held`); its other leased rows are
    given back (claims it never heard the answer of)."""
    await db.execute(SQL["renew-leases"], node, lease, list(held))


async def retake_expired_leases(db: asyncpg.Pool | asyncpg.Connection) -> int:
    rows = await db.fetch(SQL["retake-expired-leases"])
    return len(rows)


async def counts(db: asyncpg.Pool | asyncpg.Connection, domain: str | None = None) -> list:
    return await db.fetch(SQL["queue-counts"], domain)


async def state_totals(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await db.fetch(SQL["queue-state-totals"])}


async def recipient_status(
    db: asyncpg.Pool | asyncpg.Connection, recipient_id: int, company_id: int
) -> dict | None:
    row = await db.fetchrow(SQL["recipient-status"], recipient_id, company_id)
    if row is None:
        return None
    status = dict(row)
    status["attempts_log"] = [
        dict(a) for a in await db.fetch(SQL["recipient-attempts"], recipient_id)
    ]
    return status


OPERATOR_ACTIONS = {
    "retry": ("queued", "deferred"),
    "hold": ("queued", "deferred"),
    "release": ("held",),
    "delete": ("queued", "deferred", "held"),
}
_OPERATOR_QUERIES = {
    "retry": SQL["queue-retry"],
    "hold": SQL["queue-hold"],
    "release": SQL["queue-release"],
    "delete": SQL["queue-delete"],
}


async def operate(
    db: asyncpg.Pool | asyncpg.Connection,
    action: str,
    *,
    domain: str | None = None,
    company_id: int | None = None,
    ids: Sequence[int] | None = None,
    batch: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Operator actions: retry, hold, release or delete matching recipients, in batches of
    `batch` rows (one short transaction each); `progress(done, candidates)` after each batch.
    Returns how many recipients were changed."""
    if action not in OPERATOR_ACTIONS:
        raise ValueError(f"unknown queue action {action!r}")
    filters = (domain, company_id, list(ids) if ids is not None else None)
    candidates = await db.fetchval(
        SQL["queue-action-candidates"], *filters, list(OPERATOR_ACTIONS[action])
    )
    done = 0
    while True:
        rows = await db.fetch(_OPERATOR_QUERIES[action], *filters, batch)
        done += len(rows)
        if progress is not None:
            progress(done, max(candidates, done))
        if len(rows) < batch:
            return done
