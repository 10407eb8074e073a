"""`GET /api/analytics/summary/`: the company's sending results, for dashboards (executives,
sales, analysts): totals over sent campaigns and the rates derived from them."""

from __future__ import annotations

from typing import Any

from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")

SUMMARY = Schema(
    "AnalyticsSummary",
    (
        ro("campaigns", "integer"),
        ro("recipients", "integer"),
        ro("delivered", "integer"),
        ro("opened", "integer"),
        ro("clicked", "integer"),
        ro("bounced", "integer"),
        ro("unsubscribed", "integer"),
        ro("open_rate", "number"),
        ro("click_rate", "number"),
        ro("bounce_rate", "number"),
    ),
)

api = Api()


@api.add(
    "GET",
    "/api/analytics/summary/",
    "Totals and rates over sent campaigns",
    "analytics",
    permission=permission("analytics", Action.READ),
    query=(Field("since", "datetime"),),
    response=SUMMARY,
)
async def analytics_summary(call: Call) -> dict[str, Any]:
    row = dict(
        await call.db.fetchrow(SQL["analytics-summary"], call.company_id, call.query["since"])
    )

    def ratio(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    row["open_rate"] = ratio(row["opened"], row["delivered"])
    row["click_rate"] = ratio(row["clicked"], row["delivered"])
    row["bounce_rate"] = ratio(row["bounced"], row["recipients"])
    return row
