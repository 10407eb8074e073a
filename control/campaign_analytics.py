"""A campaign's analytics: opens, clicks and unsubscribes, raw and human side by side.

The tracker stores every open, click and unsubscribe with a machine flag (Apple Mail Privacy
Protection, image proxies, link scanners: tracker/machine_rules.toml); this module turns its
counts into what a marketer reads:

- per kind: `total` events, `unique_recipients`, `human_total`, `human_unique_recipients`,
  `machine_total`;
- rates over **delivered** mail, counting unique recipients (the industry's "unique open
  rate"): `open_rate` = recipients with any open / delivered, `human_open_rate` = recipients
  with an open by a person / delivered; the same for clicks; `human_click_to_open_rate` =
  human clickers / human openers; `unsubscribe_rate` = unsubscribed recipients / delivered;
- `open_machine_share`, `click_machine_share`: machine events / all events of that kind;
- `machine_reasons`: how many events each machine rule caught.

A rate is null when it cannot be computed: nothing delivered yet, or (aggregate-only tenants,
`tracking.per_recipient = false`) events that carry no recipient, so no unique count exists.
Delivered and recipients are the larger of the campaign's counters and its rows in the mail
queue. Events older than `tracker.events_retention` are deleted, and leave these counts.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from control.fields import Field, Schema, ro
from mta.queries import Queries
from tracker import events

SQL = Queries("control")
KINDS = ("open", "click", "unsubscribe")

KIND_COUNTS = Schema(
    "TrackingCounts",
    (
        ro("total", "integer", description="events, people and machines"),
        ro("unique_recipients", "integer"),
        ro("human_total", "integer", description="events not made by a machine"),
        ro("human_unique_recipients", "integer"),
        ro("machine_total", "integer"),
    ),
)
MACHINE_REASON = Schema(
    "MachineReason",
    (
        ro("kind", enum=KINDS),
        ro("reason", description="the rule of tracker/machine_rules.toml that matched"),
        ro("count", "integer"),
    ),
)
TIMELINE_BUCKET = Schema(
    "AnalyticsBucket",
    (
        ro("at", "datetime", description="start of the hour or day (UTC)"),
        ro("kind", enum=KINDS),
        ro("total", "integer"),
        ro("human_total", "integer"),
    ),
)


def _rate(name: str, description: str) -> Field:
    return ro(name, "number", nullable=True, description=description)


ANALYTICS = Schema(
    "CampaignAnalytics",
    (
        ro("id", "id"),
        ro("recipients", "integer"),
        ro("delivered", "integer"),
        ro("open", "object", shape=KIND_COUNTS),
        ro("click", "object", shape=KIND_COUNTS),
        ro("unsubscribe", "object", shape=KIND_COUNTS),
        _rate("open_rate", "recipients with any open / delivered"),
        _rate("human_open_rate", "recipients opened by a person / delivered"),
        _rate("click_rate", "recipients with any click / delivered"),
        _rate("human_click_rate", "recipients who clicked themselves / delivered"),
        _rate("human_click_to_open_rate", "human clickers / human openers"),
        _rate("unsubscribe_rate", "recipients who unsubscribed / delivered"),
        _rate("open_machine_share", "machine opens / all opens"),
        _rate("click_machine_share", "machine clicks / all clicks"),
        ro("machine_reasons", "array", shape=MACHINE_REASON),
        ro(
            "timeline",
            "array",
            shape=TIMELINE_BUCKET,
            optional=True,
            description="events per hour or day (GET .../analytics/ only)",
        ),
    ),
)


def ratio(part: int, whole: int) -> float | None:
    """`part / whole` to four places; None when `whole` is 0 (not computable, not 0%)."""
    return round(part / whole, 4) if whole else None


def _unique_rate(counts: events.KindCounts, unique: int, delivered: int) -> float | None:
    if counts.total and not counts.unique_recipients:
        return None  # aggregate-only events: no recipient, so no unique count
    return ratio(unique, delivered)


def rates(counts: dict[str, events.KindCounts], delivered: int) -> dict[str, float | None]:
    """The rates of the module docstring from per-kind counts and the delivered count."""
    opened, clicked, left = counts["open"], counts["click"], counts["unsubscribe"]
    human_cto = None
    if not (clicked.total and not clicked.unique_recipients):
        human_cto = ratio(clicked.human_unique_recipients, opened.human_unique_recipients)
    return {
        "open_rate": _unique_rate(opened, opened.unique_recipients, delivered),
        "human_open_rate": _unique_rate(opened, opened.human_unique_recipients, delivered),
        "click_rate": _unique_rate(clicked, clicked.unique_recipients, delivered),
        "human_click_rate": _unique_rate(clicked, clicked.human_unique_recipients, delivered),
        "human_click_to_open_rate": human_cto,
        "unsubscribe_rate": _unique_rate(left, left.unique_recipients, delivered),
        "open_machine_share": ratio(opened.machine_total, opened.total),
        "click_machine_share": ratio(clicked.machine_total, clicked.total),
    }


def _counts_json(c: events.KindCounts) -> dict[str, int]:
    return {f.name: getattr(c, f.name) for f in KIND_COUNTS.fields}


async def campaign_analytics(
    db: asyncpg.Pool | asyncpg.Connection, campaign: Any, timeline: str | None = None
) -> dict[str, Any]:
    """The analytics object of `campaign` (an email_campaigns row, already checked to be the
    caller's); with `timeline` ("hour" or "day"), its events per bucket too."""
    company_id, campaign_id = campaign["company_id"], campaign["id"]
    queue = await db.fetchrow(SQL["campaign-queue-counts"], company_id, campaign_id)
    recipients = max(campaign["total_recipients"], queue["recipients"])
    delivered = max(campaign["delivered_count"], queue["delivered"])
    counts = await events.campaign_counts(db, company_id, campaign_id)
    reasons = await events.machine_reasons(db, company_id, campaign_id)
    result: dict[str, Any] = {
        "id": campaign_id,
        "recipients": recipients,
        "delivered": delivered,
        **{kind: _counts_json(counts[kind]) for kind in KINDS},
        **rates(counts, delivered),
        "machine_reasons": [
            {"kind": r.kind, "reason": r.reason, "count": r.count} for r in reasons
        ],
    }
    if timeline is not None:
        buckets = await events.campaign_timeline(db, company_id, campaign_id, timeline)
        result["timeline"] = [
            {"at": b.at, "kind": b.kind, "total": b.total, "human_total": b.human_total}
            for b in buckets
        ]
    return result
