"""The suppression policy: what a bounce event does to the address, per tenant.

Defaults (issue 4): a hard bounce suppresses the address at once; soft bounces suppress after
3 within 7 days; a complaint suppresses and unsubscribes the contact from every list of that
tenant; reputation and policy refusals (blocked, badreputation, spamdetected...) never suppress:
they raise a per-destination signal and a metric. Every suppression keeps its evidence.

A tenant overrides the defaults in `companies.settings -> 'bounce'`:
    {"suppress_hard": true, "soft_bounce_limit": 3, "soft_bounce_window_days": 7,
     "complaint_unsubscribes": true}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from bounce import metrics
from bounce.events import BounceEvent, EventKind, storable
from bounce.reasons import REPUTATION_REASONS, Reason
from mta.queries import Queries
from mta.unsubscriptions import ALL_LISTS, unsubscribe

SQL = Queries("bounce")

# Soft failures that say nothing about the address: they never count towards suppression.
_NOT_COUNTED = frozenset({Reason.VACATION, Reason.FEEDBACK, Reason.SYSTEMERROR, Reason.MAILERERROR})


@dataclass(frozen=True, slots=True)
class BouncePolicy:
    suppress_hard: bool = True
    soft_bounce_limit: int = 3  # 0 never suppresses on soft bounces
    soft_bounce_window_days: int = 7
    complaint_unsubscribes: bool = True

    @classmethod
    def from_settings(cls, document: Any) -> BouncePolicy:
        """The policy from a tenant's `settings.bounce` (unknown or ill-typed keys ignored)."""
        if not isinstance(document, dict):
            return cls()
        values = {}
        for f in fields(cls):
            value = document.get(f.name)
            if isinstance(value, bool) if f.type == "bool" else type(value) is int:
                values[f.name] = value
        return cls(**values)


async def policies(conn: asyncpg.Connection, company_ids: set[int]) -> dict[int, BouncePolicy]:
    rows = await conn.fetch(SQL["company-settings"], list(company_ids))
    # jsonb arrives decoded on the daemon's pools (mta.database's codec), as text elsewhere
    return {
        r["id"]: BouncePolicy.from_settings(
            json.loads(r["bounce"]) if isinstance(r["bounce"], str) else r["bounce"]
        )
        for r in rows
    }


def _evidence(e: BounceEvent) -> str:
    parts = [f"{e.source}: {e.reason}"]
    if e.status:
        parts.append(e.status)
    if e.remote_mta:
        parts.append(f"from {e.remote_mta}")
    if e.inbound_id:
        parts.append(f"inbound message {e.inbound_id}")
    if e.recipient_id:
        parts.append(f"recipient row {e.recipient_id}")
    return storable("; ".join(parts) + (f"\n{e.diagnostic[:2000]}" if e.diagnostic else ""))


async def apply(conn: asyncpg.Connection, events: list[BounceEvent]) -> int:
    """Apply each tenant's policy to recorded events; returns how many addresses it suppressed.
    Call inside the transaction that inserted the events (the soft count includes them)."""
    signals: dict[tuple[str, str], tuple[int, str]] = {}
    for e in events:
        if e.reason in REPUTATION_REASONS and e.kind in (EventKind.BOUNCED, EventKind.DEFERRED):
            count, _ = signals.get((e.domain, e.reason.value), (0, ""))
            signals[(e.domain, e.reason.value)] = (count + 1, storable(e.diagnostic, 500))
            metrics.REPUTATION_SIGNALS.labels(e.reason.value).inc()
    if signals:
        keys = list(signals)
        await conn.execute(
            SQL["raise-signal"],
            [k[0] for k in keys],
            [k[1] for k in keys],
            [signals[k][0] for k in keys],
            [signals[k][1] for k in keys],
        )
    companies = {e.company_id for e in events if e.company_id is not None and e.address}
    if not companies:
        return 0
    by_company = await policies(conn, companies)
    suppressed = 0
    for e in events:
        if e.company_id is None or not e.address:
            continue
        policy = by_company.get(e.company_id, BouncePolicy())
        reason = await _suppression_reason(conn, policy, e)
        added = reason is not None and await conn.fetchrow(
            SQL["suppress"], e.company_id, e.address, reason, _evidence(e)
        )
        if added:
            suppressed += 1
            metrics.SUPPRESSIONS.labels(reason).inc()
        if (e.kind is EventKind.COMPLAINED and policy.complaint_unsubscribes) or (
            e.kind is EventKind.UNSUBSCRIBED
        ):
            complained = e.kind is EventKind.COMPLAINED
            await unsubscribe(
                conn,
                e.company_id,
                e.address,
                ALL_LISTS if complained else e.list_id,
                source="complaint" if complained else "mailto",
                evidence=_evidence(e),
            )
    return suppressed


async def _suppression_reason(
    conn: asyncpg.Connection, policy: BouncePolicy, e: BounceEvent
) -> str | None:
    if e.kind is EventKind.COMPLAINED:
        return "complaint"
    if e.kind is not EventKind.BOUNCED or e.reason in REPUTATION_REASONS:
        return None
    if e.hard:
        return e.reason.value if policy.suppress_hard else None
    if policy.soft_bounce_limit <= 0 or e.reason in _NOT_COUNTED:
        return None
    count = await conn.fetchval(
        SQL["recent-soft-bounces"], e.company_id, e.address, policy.soft_bounce_window_days
    )
    if count >= policy.soft_bounce_limit:
        return f"soft bounces ({e.reason.value}, {count} in {policy.soft_bounce_window_days} days)"
    return None
