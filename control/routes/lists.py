"""Email lists (blueprint §4.2): `/api/email-lists/`. Subscriber counts are computed from
memberships; a list targeted or suppressed by an active campaign cannot be deleted."""

from __future__ import annotations

from typing import Any

from control.errors import InUse
from control.fields import Field, Schema, ro
from control.resource import ResourceSpec, register
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
CODE = r"^[A-Za-z0-9_-]+$"
LIST_TYPES = ("static", "dynamic", "segment", "seed", "suppression")
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
        before_delete=before_delete,
    ),
)
