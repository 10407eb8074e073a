"""`GET /api/analytics/summary/`: the company's sending results, for dashboards (executives,
sales, analysts): totals over sent campaigns and the rates derived from them, raw and
human-only side by side (control/campaign_analytics.py defines them)."""

from __future__ import annotations

from typing import Any

from control.campaign_analytics import rates, ratio
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routing import Api, Call
from mta.queries import Queries
from tracker import events

SQL = Queries("control")

SUMMARY = Schema(
    "AnalyticsSummary",
    (
        ro("campaigns", "integer"),
        ro("recipients", "integer"),
        ro("delivered", "integer"),
        ro("opened", "integer", description="recipients with any open"),
        ro("human_opened", "integer", description="recipients opened by a person"),
        ro("clicked", "integer", description="recipients with any click"),
        ro("human_clicked", "integer", description="recipients who clicked themselves"),
        ro("bounced", "integer"),
        ro("unsubscribed", "integer"),
        ro("open_rate", "number"),
        ro("human_open_rate", "number"),
        ro("click_rate", "number"),
        ro("human_click_rate", "number"),
        ro("open_machine_share", "number", description="machine opens / all opens"),
        ro("click_machine_share", "number", description="machine clicks / all clicks"),
        ro("bounce_rate", "number"),
    ),
)

api = Api()


@api.add(
    "GET",
    "/api/analytics/summary/",
    "Totals and rates over sent campaigns, raw and human-only",
    "analytics",
    permission=permission("analytics", Action.READ),
    query=(Field("since", "datetime"),),
    response=SUMMARY,
)
async def analytics_summary(call: Call) -> dict[str, Any]:
    row = dict(
        await call.db.fetchrow(SQL["analytics-summary"], call.company_id, call.query["since"])
    )
    counts = await events.campaigns_counts(call.db, call.company_id, row.pop("campaign_ids"))
    row["opened"] = counts["open"].unique_recipients
    row["human_opened"] = counts["open"].human_unique_recipients
    row["clicked"] = counts["click"].unique_recipients
    row["human_clicked"] = counts["click"].human_unique_recipients
    derived = rates(counts, row["delivered"])
    for name in (
        "open_rate",
        "human_open_rate",
        "click_rate",
        "human_click_rate",
        "open_machine_share",
        "click_machine_share",
    ):
        row[name] = derived[name] or 0.0  # a dashboard shows 0 for "nothing yet"
    row["bounce_rate"] = ratio(row["bounced"], row["recipients"]) or 0.0
    return row
