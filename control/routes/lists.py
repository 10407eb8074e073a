"""Email lists (blueprint §4.2): `/api/email-lists/`. Subscriber counts are computed from
memberships; a list targeted or suppressed by an active campaign cannot be deleted."""

from __future__ import annotations

from typing import Any

from control.errors import InUse, ValidationFailed
from control.fields import Field, Schema, ro
from control.resource import ResourceSpec, register
from control.routes.segments import check_criteria
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
CODE = r"^[A-Za-z0-9_-]+$"
LIST_TYPES = ("static", "dynamic", "segment", "seed", "suppression")
# Lists whose members are whoever their segment_criteria match when a campaign is sent.
SEGMENT_TYPES = frozenset({"dynamic", "segment"})
SOURCE_TYPES = ("manual", "import", "form", "api", "crm_sync", "integration")

SCHEMA = Schema(
    "EmailList",
    (
        ro("id", "id"),
        Field("list_name", required=True, min_length=1, max_length=100),
        Field("list_code", required=True, min_length=1, max_length=20, pattern=CODE),
        Field("description", "text", nullable=True, max_length=5000),
        Field("list_type", required=True, enum=LIST_TYPES),
        Field("source_type", required=True, enum=SOURCE_TYPES),
        Field("segment_criteria", "object", default=dict),
        Field("is_active", "boolean", default=True),
        Field("is_public", "boolean", default=False),
        ro("total_subscribers", "integer"),
        ro("active_subscribers", "integer"),
        ro("unsubscribed_count", "integer"),
        ro("last_sync_date", "datetime", nullable=True),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (
    Field("is_active", "boolean"),
    Field("list_type", enum=LIST_TYPES),
    Field("search", max_length=100),
)


async def check_segment(call: Call, data: dict[str, Any], current: Any = None) -> None:
    """segment_criteria valid for the caller's company, and present on a dynamic list."""
    list_type = data.get("list_type", current["list_type"] if current else None)
    criteria = data.get("segment_criteria", current["segment_criteria"] if current else {})
    if "segment_criteria" in data:
        await check_criteria(call.db, call.company_id, criteria, "segment_criteria")
    if list_type in SEGMENT_TYPES and not criteria:
        raise ValidationFailed({"segment_criteria": f"a {list_type} list needs criteria"})


async def before_create(call: Call, data: dict[str, Any]) -> None:
    await check_segment(call, data)


async def before_update(call: Call, data: dict[str, Any], current: Any) -> None:
    await check_segment(call, data, current)


async def before_delete(call: Call, current: Any) -> None:
    users = await call.db.fetch(SQL["campaigns-using-list"], current["id"], call.company_id)
    if users:
        raise InUse(
            "the list is used by active campaigns",
            campaigns=[{"id": r["id"], "campaign_code": r["campaign_code"]} for r in users],
        )


api = Api()
register(
    api,
    ResourceSpec(
        name="email_list",
        sql="list",
        path="/api/email-lists/",
        tag="lists",
        perm="lists",
        schema=SCHEMA,
        filters=FILTERS,
        before_create=before_create,
        before_update=before_update,
        before_delete=before_delete,
    ),
)
