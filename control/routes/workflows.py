"""Email workflows (blueprint §4.1), definitions only: `/api/email-workflows/`.

Steps are a list of objects with a `type`; a `send_campaign` step names a campaign of the
same company (`campaign_id`). Those references are kept in `workflow_campaigns` on every save,
so a campaign used by an active workflow cannot be deleted (§6.3).
"""

from __future__ import annotations

from typing import Any, Literal

from control import references
from control.errors import ValidationFailed
from control.fields import INT64_MAX, Field, Schema, ro
from control.resource import ResourceSpec, register
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
CODE = r"^[A-Za-z0-9_-]+$"
WORKFLOW_TYPES = ("welcome", "nurture", "re_engagement", "abandoned_cart", "birthday", "custom")
TIMINGS = ("immediate", "delayed", "scheduled", "recurring")
# Steps that name a record, and which kind: checked against the company on every save.
_STEP_REFERENCES: dict[str, Literal["campaign", "list"]] = {
    "send_campaign": "campaign",
    "add_to_list": "list",
    "remove_from_list": "list",
}
STEP_TYPES = ("send_campaign", "wait", "condition", "add_to_list", "remove_from_list", "webhook")
MAX_STEPS = 100

SCHEMA = Schema(
    "EmailWorkflow",
    (
        ro("id", "id"),
        Field("workflow_name", required=True, min_length=1, max_length=100),
        Field("workflow_code", required=True, min_length=1, max_length=20, pattern=CODE),
        Field("description", "text", nullable=True, max_length=5000),
        Field("workflow_type", required=True, enum=WORKFLOW_TYPES),
        Field("trigger_conditions", "object", default=dict),
        Field("workflow_steps", "array", default=list),
        Field("trigger_timing", required=True, enum=TIMINGS),
        Field("delay_settings", "object", default=dict),
        Field("is_active", "boolean", default=True),
        Field("is_default", "boolean", default=False),
        ro("execution_count", "integer"),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (
    Field("is_active", "boolean"),
    Field("workflow_type", enum=WORKFLOW_TYPES),
    Field("search", max_length=100),
)


def step_campaigns(steps: list[Any]) -> list[int]:
    """The campaign ids `steps` send, or 422 naming the first bad step."""
    return _step_ids(steps)["campaign"]


def _step_ids(steps: list[Any]) -> dict[Literal["campaign", "list"], list[int]]:
    """The campaign and list ids `steps` name, or 422 naming the first bad step."""
    if len(steps) > MAX_STEPS:
        raise ValidationFailed({"workflow_steps": f"at most {MAX_STEPS} steps"})
    ids: dict[Literal["campaign", "list"], list[int]] = {"campaign": [], "list": []}
    for i, step in enumerate(steps):
        where = f"workflow_steps[{i}]"
        if not isinstance(step, dict) or step.get("type") not in STEP_TYPES:
            raise ValidationFailed({where: f"must be an object with type one of {STEP_TYPES}"})
        kind = _STEP_REFERENCES.get(step["type"])
        if kind is not None:
            value = step.get(f"{kind}_id")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT64_MAX:
                raise ValidationFailed({f"{where}.{kind}_id": f"must be a {kind} id"})
            ids[kind].append(value)
    return ids


async def check_steps(call: Call, data: dict[str, Any], current: Any = None) -> None:
    """Every id a step names is a live record of the caller's company (issue 12.13)."""
    if "workflow_steps" not in data:
        return
    for kind, ids in _step_ids(data["workflow_steps"]).items():
        missing = await references.missing_ids(call.db, call.company_id, kind, ids)
        if missing:
            raise ValidationFailed({"workflow_steps": f"no such {kind}(s): {missing}"})


async def sync_campaigns(call: Call, action: str, row: Any) -> None:
    await call.db.execute(SQL["clear-workflow-campaigns"], row["id"])
    if action != "delete":
        ids = step_campaigns(row["workflow_steps"])
        await call.db.execute(SQL["add-workflow-campaigns"], call.company_id, row["id"], ids)


api = Api()
register(
    api,
    ResourceSpec(
        name="email_workflow",
        sql="workflow",
        path="/api/email-workflows/",
        tag="workflows",
        perm="workflows",
        schema=SCHEMA,
        filters=FILTERS,
        before_create=check_steps,
        before_update=check_steps,
        after_write=sync_campaigns,
    ),
)
