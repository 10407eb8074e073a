"""`GET /api/audit-log/`: the company's audit trail, newest first (permission audit:read)."""

from __future__ import annotations

from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routing import Api, Call, Page
from mta.queries import Queries

SQL = Queries("control")

ENTRY = Schema(
    "AuditEntry",
    (
        ro("id", "id"),
        ro("at", "datetime"),
        ro("user_id", "id", nullable=True),
        ro("api_key_id", "id", nullable=True),
        ro("action"),
        ro("resource"),
        ro("resource_id", nullable=True),
        ro("before", "object", nullable=True),
        ro("after", "object", nullable=True),
        ro("ip", nullable=True),
        ro("request_id"),
    ),
)
FILTERS = (
    Field("resource", max_length=50),
    Field("resource_id", max_length=40),
    Field("user_id", "id"),
    Field("action", max_length=80),
    Field("since", "datetime"),
)

api = Api()


@api.add(
    "GET",
    "/api/audit-log/",
    "The company's audit log",
    "audit",
    permission=permission("audit", Action.READ),
    query=FILTERS,
    response=ENTRY,
    paginated=True,
)
async def list_audit(call: Call) -> Page:
    q = call.query
    limit, offset = call.limit_offset
    rows = await call.db.fetch(
        SQL["list-audit"],
        call.company_id,
        q["resource"],
        q["resource_id"],
        q["user_id"],
        q["action"],
        q["since"],
        limit,
        offset,
    )
    return call.page(rows)
