"""A campaign's report (issue 15, point 3): what a marketer reads after a send, each part
also exported as CSV.

- delivery: the mail queue's recipient rows by state (delivered, deferred, bounced...);
- bounces by hard/soft and reason (bounce/reasons.py), complaints, mailto: unsubscribes;
- engagement: opens, clicks and unsubscribes, unique and total, people and machines apart,
  and the rates (control/campaign_analytics.py, the same object as `/analytics/`);
- links: clicks per URL, people and machines apart;
- per recipient domain and per mailbox provider (Gmail, Microsoft, Yahoo, Apple, other, from
  the MX the mail was delivered to: control/mailbox_providers.py): recipients, delivered,
  bounced, deferred, people who opened and clicked.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from control.campaign_analytics import ANALYTICS, campaign_analytics, ratio
from control.fields import Schema, ro
from control.mailbox_providers import PROVIDERS, mailbox_provider
from mta.queries import Queries
from tracker import events

SQL = Queries("control")
TOP_DOMAINS = 100  # domains in the JSON report; the CSV export has them all

OUTCOMES = (
    ro("recipients", "integer"),
    ro("delivered", "integer"),
    ro("bounced", "integer"),
    ro("deferred", "integer"),
    ro("human_opened", "integer", description="recipients who opened as people"),
    ro("human_clicked", "integer", description="recipients who clicked as people"),
    ro("human_open_rate", "number", nullable=True, description="human_opened / delivered"),
    ro("human_click_rate", "number", nullable=True, description="human_clicked / delivered"),
)
DOMAIN = Schema("ReportDomain", (ro("domain"), ro("provider", enum=PROVIDERS), *OUTCOMES))
PROVIDER = Schema("ReportProvider", (ro("provider", enum=PROVIDERS), *OUTCOMES))
LINK = Schema(
    "ReportLink",
    (
        ro("url"),
        ro("link_index", "integer", nullable=True),
        ro("total", "integer"),
        ro("unique_recipients", "integer"),
        ro("human_total", "integer"),
        ro("human_unique_recipients", "integer"),
        ro("machine_total", "integer"),
    ),
)
BOUNCE = Schema(
    "ReportBounce",
    (ro("hard", "boolean"), ro("reason"), ro("events", "integer"), ro("recipients", "integer")),
)
FEEDBACK = Schema(
    "ReportFeedback",
    (
        ro("complaints", "integer", description="spam complaints (ARF, feedback loops)"),
        ro("mailto_unsubscribes", "integer", description="through the List-Unsubscribe mailto:"),
        ro("deferral_events", "integer", description="delays reported by DSNs"),
    ),
)
REPORT = Schema(
    "CampaignReport",
    (
        ro("id", "id"),
        ro("delivery", "object", description="recipient rows per queue state"),
        ro("bounces", "array", shape=BOUNCE),
        ro("feedback", "object", shape=FEEDBACK),
        ro("engagement", "object", shape=ANALYTICS),
        ro("links", "array", shape=LINK),
        ro("providers", "array", shape=PROVIDER),
        ro("domains", "array", shape=DOMAIN, description=f"the {TOP_DOMAINS} largest"),
    ),
)


def _outcomes(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: row[k] for k in ("recipients", "delivered", "bounced", "deferred")},
        "human_opened": row["human_opened"],
        "human_clicked": row["human_clicked"],
        "human_open_rate": ratio(row["human_opened"], row["delivered"]),
        "human_click_rate": ratio(row["human_clicked"], row["delivered"]),
    }


async def domains(db: asyncpg.Pool | asyncpg.Connection, campaign: Any) -> list[dict[str, Any]]:
    """Every recipient domain of the campaign, largest first, with its provider."""
    rows = await db.fetch(SQL["campaign-report-domains"], campaign["company_id"], campaign["id"])
    return [
        {"domain": r["domain"], "provider": mailbox_provider(r["mx"], r["domain"]), **_outcomes(r)}
        for r in rows
    ]


def providers(by_domain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The domains' figures added up per mailbox provider, in PROVIDERS order."""
    keys = ("recipients", "delivered", "bounced", "deferred", "human_opened", "human_clicked")
    sums = {p: dict.fromkeys(keys, 0) for p in PROVIDERS}
    for d in by_domain:
        for k in keys:
            sums[d["provider"]][k] += d[k]
    return [{"provider": p, **_outcomes(sums[p])} for p in PROVIDERS if sums[p]["recipients"]]


async def links(db: asyncpg.Pool | asyncpg.Connection, campaign: Any) -> list[dict[str, Any]]:
    found = await events.campaign_links(db, campaign["company_id"], campaign["id"])
    return [
        {
            "url": link.url,
            "link_index": link.link_index,
            "total": link.counts.total,
            "unique_recipients": link.counts.unique_recipients,
            "human_total": link.counts.human_total,
            "human_unique_recipients": link.counts.human_unique_recipients,
            "machine_total": link.counts.machine_total,
        }
        for link in found
    ]


async def bounces(db: asyncpg.Pool | asyncpg.Connection, campaign: Any) -> list[dict[str, Any]]:
    rows = await db.fetch(SQL["campaign-report-bounces"], campaign["company_id"], campaign["id"])
    return [dict(r) for r in rows]


async def campaign_report(db: asyncpg.Pool | asyncpg.Connection, campaign: Any) -> dict[str, Any]:
    """The whole report of `campaign` (an email_campaigns row already checked to be the
    caller's)."""
    company_id, campaign_id = campaign["company_id"], campaign["id"]
    states = await db.fetch(SQL["campaign-report-states"], company_id, campaign_id)
    feedback = {
        r["kind"]: r["events"]
        for r in await db.fetch(SQL["campaign-report-feedback"], company_id, campaign_id)
    }
    by_domain = await domains(db, campaign)
    return {
        "id": campaign_id,
        "delivery": {r["state"]: r["count"] for r in states},
        "bounces": await bounces(db, campaign),
        "feedback": {
            "complaints": feedback.get("complained", 0),
            "mailto_unsubscribes": feedback.get("unsubscribed", 0),
            "deferral_events": feedback.get("deferred", 0),
        },
        "engagement": await campaign_analytics(db, campaign, timeline="day"),
        "links": await links(db, campaign),
        "providers": providers(by_domain),
        "domains": by_domain[:TOP_DOMAINS],
    }
