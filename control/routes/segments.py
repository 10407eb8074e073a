"""Segments (issue 15): `POST /api/segments/preview` counts the contacts criteria match and
shows the first 20; `check_criteria` is the validation lists and campaigns run on save.

The grammar, its validation and its compilation to parameterised SQL are
control/segments.py's; this module adds what needs the database: every list and campaign the
criteria name must be a live row of the caller's company (another company's id answers as
if it did not exist), and the preview itself, read-only and bounded by a statement timeout.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from control import segments
from control.errors import ValidationFailed
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routes.contacts import SCHEMA as CONTACT
from control.routes.contacts import serialize
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")

PREVIEW = Schema(
    "SegmentPreviewRequest",
    (
        Field(
            "criteria",
            "object",
            required=True,
            description="segment criteria (README, Segments); {} matches every contact",
        ),
        Field("list_id", "id", nullable=True, description="narrow to this list's subscribers"),
    ),
)
PREVIEW_RESULT = Schema(
    "SegmentPreview",
    (
        ro("count", "integer", description="live contacts matched"),
        ro("sample", "array", shape=CONTACT, description="the first 20 by id"),
    ),
)


async def check_criteria(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, criteria: Any, name: str
) -> dict[str, Any]:
    """`criteria` validated for company `company_id`; ValidationFailed naming the bad part as
    `<name>.all[0].op` (the grammar) or `<name>....list` (a list or campaign the company
    does not have)."""
    try:
        segments.validate(criteria, name)
    except segments.SegmentInvalid as exc:
        raise ValidationFailed({exc.path: exc.reason}) from None
    refs = segments.references(criteria, name)
    if not refs:
        return criteria
    lists = [r.id for r in refs if r.kind == "list"]
    campaigns = [r.id for r in refs if r.kind == "campaign"]
    missing = await db.fetchrow(SQL["segment-missing-references"], company_id, lists, campaigns)
    bad = {("list", i) for i in missing["lists"]} | {("campaign", i) for i in missing["campaigns"]}
    errors = {r.path: f"no such {r.kind} in your company" for r in refs if (r.kind, r.id) in bad}
    if errors:
        raise ValidationFailed(errors)
    return criteria


async def preview(
    db: asyncpg.Pool, company_id: int, criteria: dict[str, Any]
) -> tuple[int, list[asyncpg.Record]]:
    """(how many contacts of the company match, the first 20 of them) for checked criteria."""
    condition = segments.compile_criteria(criteria, company_param=1, first_param=2)
    count_sql = segments.with_condition(SQL["segment-count"], condition)
    sample_sql = segments.with_condition(SQL["segment-sample"], condition)
    async with db.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(segments.WORK_MEM)
        await conn.execute(segments.STATEMENT_TIMEOUT)
        count = await conn.fetchval(count_sql, company_id, *condition.params)
        sample = await conn.fetch(sample_sql, company_id, *condition.params) if count else []
    return count, sample


api = Api()


@api.add(
    "POST",
    "/api/segments/preview",
    "Count the contacts segment criteria match, with a sample of 20",
    "lists",
    permission=permission("lists", Action.READ),
    body=PREVIEW,
    response=PREVIEW_RESULT,
    audited=False,  # reads only
    errors=((503, "the segment took longer than the statement timeout"),),
)
async def preview_segment(call: Call) -> dict[str, Any]:
    assert call.body is not None
    criteria = await check_criteria(call.db, call.company_id, call.body["criteria"], "criteria")
    list_id = call.body.get("list_id")
    if list_id is not None:
        missing = await call.db.fetchrow(
            SQL["segment-missing-references"], call.company_id, [list_id], []
        )
        if missing["lists"]:
            raise ValidationFailed({"list_id": "no such list in your company"})
        criteria = {"all": [{"list": list_id}, criteria]} if criteria else {"list": list_id}
    count, sample = await preview(call.db, call.company_id, criteria)
    return {"count": count, "sample": [serialize(call, r) for r in sample]}
