"""Campaign reports (issue 15, point 3): `GET /api/email-campaigns/{id}/report/` (the whole
report, control/campaign_report.py) and its parts as CSV: `report/links.csv`,
`report/domains.csv`, `report/providers.csv`, `report/bounces.csv`. All need
`analytics:read`; another company's campaign is not found."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.responses import Response

from control import campaign_report as report
from control.errors import NotFound
from control.fields import Schema
from control.permissions import Action, permission
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
CSV_TYPE = "text/csv"
READ = permission("analytics", Action.READ)

api = Api()


async def _campaign(call: Call) -> Any:
    row = await call.db.fetchrow(SQL["get-campaign"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("email campaign")
    return row


@api.add(
    "GET",
    "/api/email-campaigns/{id}/report/",
    "A campaign's report: delivery, bounces by reason, complaints, engagement (people and "
    "machines apart), links, mailbox providers and recipient domains",
    "analytics",
    permission=READ,
    response=report.REPORT,
)
async def campaign_report(call: Call) -> dict[str, Any]:
    return await report.campaign_report(call.db, await _campaign(call))


def cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading ' (OWASP CSV
    injection): URLs and domains come from mail, not from us."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(name: str, schema: Schema, rows: Sequence[dict[str, Any]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = [f.name for f in schema.fields]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row[c]) for c in columns])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _export(part: str, schema: Schema, rows: Callable[[Call, Any], Awaitable[list]]) -> None:
    async def export(call: Call) -> Response:
        campaign = await _campaign(call)
        return csv_response(f"campaign-{campaign['id']}-{part}", schema, await rows(call, campaign))

    export.__name__ = f"export_campaign_{part}"
    api.add(
        "GET",
        f"/api/email-campaigns/{{id}}/report/{part}.csv",
        f"A campaign's report: {part}, as CSV",
        "analytics",
        permission=READ,
        produces=CSV_TYPE,
    )(export)


async def _providers(call: Call, campaign: Any) -> list[dict[str, Any]]:
    return report.providers(await report.domains(call.db, campaign))


_export("links", report.LINK, lambda call, c: report.links(call.db, c))
_export("domains", report.DOMAIN, lambda call, c: report.domains(call.db, c))
_export("providers", report.PROVIDER, _providers)
_export("bounces", report.BOUNCE, lambda call, c: report.bounces(call.db, c))
