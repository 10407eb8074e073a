"""A campaign on its way out (issue 10): who it reaches, before sending.

GET /api/email-campaigns/{id}/audience/   the eligible count, a sample, and how many each
                                          exclusion removed (control/audience.py)
GET /api/email-campaigns/{id}/progress/   audience, enqueued, and the queue rows by state
                                          (control/campaign_lifecycle.py)
"""

from __future__ import annotations

from typing import Any

from control.audience import EXCLUSIONS, AudienceRules, audience, requires_consent
from control.campaign_lifecycle import progress
from control.errors import NotFound
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.routes.contacts import mask_address
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")

AUDIENCE = Schema(
    "CampaignAudience",
    (
        ro("count", "integer", description="contacts the campaign would be sent to"),
        ro("members", "integer", description="subscribed members of the target list"),
        ro(
            "removed",
            "object",
            description="members left out, by the first exclusion that applies: "
            + ", ".join(EXCLUSIONS),
        ),
        ro("sample", "array", description="the first contacts of the audience"),
        ro("consent_required", "boolean"),
    ),
)

PROGRESS = Schema(
    "CampaignProgress",
    (
        ro("id", "id"),
        ro("campaign_status"),
        ro("audience", "integer", description="recipients counted at send; the rows once written"),
        ro("enqueued", "integer", description="queue rows written so far"),
        ro("enqueue_done", "boolean"),
        ro("pending", "integer", description="queued, deferred, sending or held"),
        ro("finished", "integer", description="in a final state"),
        *(
            ro(name, "integer")
            for name in (
                "queued",
                "deferred",
                "sending",
                "held",
                "delivered",
                "bounced",
                "expired",
                "suppressed",
                "cancelled",
            )
        ),
    ),
)

api = Api()


async def _campaign(call: Call) -> Any:
    row = await call.db.fetchrow(SQL["get-campaign"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("email campaign")
    return row


@api.add(
    "GET",
    "/api/email-campaigns/{id}/audience/",
    "Who the campaign would reach now: count, sample, removed by each exclusion",
    "campaigns",
    permission=permission("campaigns", Action.READ),
    query=(Field("sample_size", "integer", minimum=0, maximum=100, default=10),),
    response=AUDIENCE,
)
async def campaign_audience(call: Call) -> dict[str, Any]:
    campaign = await _campaign(call)
    settings = await call.db.fetchval(SQL["company-settings"], call.company_id) or {}
    consent = requires_consent(settings)
    rules = AudienceRules(
        call.company_id,
        campaign["target_list_id"],
        campaign["suppression_list_id"],
        consent,
        campaign["segment_criteria"],
    )
    found = await audience(call.db, rules, call.query["sample_size"])
    sample = found.sample
    if call.principal is None or not call.principal.sees_pii:
        sample = [{**c, "email": mask_address(c["email"])} for c in sample]
    return {
        "count": found.count,
        "members": found.members,
        "removed": found.removed,
        "sample": sample,
        "consent_required": consent,
    }


@api.add(
    "GET",
    "/api/email-campaigns/{id}/progress/",
    "How far the send is: audience, enqueued, delivered, deferred, bounced... of the total",
    "campaigns",
    permission=permission("campaigns", Action.READ),
    response=PROGRESS,
)
async def campaign_progress(call: Call) -> dict[str, Any]:
    return await progress(call.db, await _campaign(call))
