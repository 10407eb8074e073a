"""A campaign's way into the mail queue (issue 10, point 3).

`freeze` runs in the transaction that moves a campaign to sending (the send endpoint, or the
runner when a scheduled campaign comes due): it copies what the campaign sends — subject,
preheader, template, sender profile, audience rules — into a `campaign_versions` row with the
queue's message row (marketing, tagged with the campaign and list, no body). Later edits never
change mail already queued.

`enqueue_chunk` then writes the version's recipients set-wise: one INSERT ... SELECT over the
audience per chunk of list members, the cursor moved in the same statement, each chunk its own
short transaction holding the version's row lock (FOR UPDATE SKIP LOCKED). Whoever runs it —
any control process of any daemon — writes each chunk exactly once, and a crash loses at most
an uncommitted chunk, which the next run writes again from the same cursor: no duplicates, no
gaps. `total_recipients` follows the rows written.

Header fields composed from user data are checked here too (issue 10, point 8, at send): a
campaign whose subject, preheader or sender profile holds a line break or another control
character, or whose template cannot compile, is refused with the field and the reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from control import metrics
from control.audience import SEGMENT_MARKER, segment_condition
from control.rendering import TemplateRefused, check_header_text, check_template, compile_part
from mta.queries import Queries

SQL = Queries("control")
CHUNK = 10_000  # list members considered per enqueue transaction


class SendRefused(ValueError):
    """The campaign cannot be sent as it is: the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_parts(campaign: Any, template: Any, sender: Any) -> None:
    check_header_text(campaign["subject_line"], "subject_line")
    if campaign["preheader_text"]:
        compile_part(campaign["preheader_text"], "preheader_text", html=True)
    check_header_text(sender["from_name"], "sender_profile.from_name")
    for name in ("from_address", "reply_to", "profile_name"):
        value = sender[name]
        if value and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise TemplateRefused(
                f"sender_profile.{name}", "contains a line break or another control character"
            )
    check_template(template["html_content"], template["text_content"])


async def check_sendable(campaign: Any, template: Any, sender: Any) -> None:
    """SendRefused when a header field holds control characters or a template part cannot
    compile (compiled off the event loop: a large template takes milliseconds)."""
    try:
        await asyncio.to_thread(_check_parts, campaign, template, sender)
    except TemplateRefused as exc:
        raise SendRefused(exc.part, exc.reason) from None


async def freeze(conn: asyncpg.Connection, campaign_id: int, company_id: int, consent: bool) -> Any:
    """The campaign as it is now, frozen into a new version (in the caller's transaction)."""
    version = await conn.fetchrow(SQL["freeze-campaign-version"], campaign_id, company_id, consent)
    assert version is not None, "freeze needs a live campaign with a sender profile"
    return version


def _chunk_query(version: Any) -> str:
    query = SQL["enqueue-campaign-chunk"]
    condition = segment_condition(version["segment_criteria"])
    return query if condition is None else query.replace(SEGMENT_MARKER, f"({condition})")


async def enqueue_chunk(db: asyncpg.Pool, max_age: float, chunk: int = CHUNK) -> bool:
    """Write one chunk of one version still being enqueued; False when there was none free."""
    async with db.acquire() as conn, conn.transaction():
        version = await conn.fetchrow(SQL["lock-enqueuing-version"])
        if version is None:
            return False
        row = await conn.fetchrow(_chunk_query(version), version["id"], chunk, max_age)
    if row is not None and row["written"]:
        metrics.CAMPAIGN_ENQUEUED.inc(row["written"])
    return True
