"""A campaign on its way out (issue 10): who it reaches, before sending.

GET /api/email-campaigns/{id}/audience/   the eligible count, a sample, and how many each
                                          exclusion removed (control/audience.py)
GET /api/email-campaigns/{id}/progress/   audience, enqueued, and the queue rows by state
                                          (control/campaign_lifecycle.py)
GET /api/email-campaigns/{id}/preview/    subject, HTML and text rendered for ?contact_id=
POST /api/email-campaigns/{id}/test-send/ that rendering, "[Test]", to up to 10 addresses
                                          (control/campaign_preview.py)
"""

from __future__ import annotations

from typing import Any

from control.audience import EXCLUSIONS, AudienceRules, audience, requires_consent
from control.campaign_lifecycle import progress
from control.campaign_preview import (
    MAX_TEST_ADDRESSES,
    TEST_PREFIX,
    content_of,
    render_for,
    send_tests,
)
from control.email_syntax import AddressError, normalize_address
from control.errors import NotFound, ValidationFailed
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.rendering import Rendered, RenderFailed, TemplateRefused
from control.routes.contacts import mask_address
from control.routing import Api, Call
from mta.queries import Queries

SQL = Queries("control")
PREVIEW_ADDRESS = "preview@example.com"

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

PREVIEW_QUERY = (
    Field("contact_id", "id", nullable=True, description="render for this contact; absent: none"),
)
PREVIEW = Schema(
    "CampaignPreview",
    (
        ro("subject"),
        ro("from_name"),
        ro("html"),
        ro("text", nullable=True),
        ro("missing_variables", "integer", description="variables the contact lacked"),
    ),
)
TEST_SEND = Schema(
    "CampaignTestSend",
    (
        Field(
            "addresses",
            "array",
            items="string",
            required=True,
            description=f"1 to {MAX_TEST_ADDRESSES} addresses",
        ),
        Field("contact_id", "id", nullable=True, description="render for this contact"),
    ),
)
TEST_SENT = Schema(
    "CampaignTestSent",
    (ro("queued", "array", description="queue row ids, one per address"), ro("subject")),
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


async def _rendered(call: Call, contact_id: int | None) -> tuple[Rendered, Any]:
    campaign = await _campaign(call)
    template = await call.db.fetchrow(
        SQL["get-template"], campaign["email_template_id"], call.company_id
    )
    sender = None
    if campaign["sender_profile_id"] is not None:
        sender = await call.db.fetchrow(
            SQL["get-sender"], campaign["sender_profile_id"], call.company_id
        )
    contact = None
    if contact_id is not None:
        contact = await call.db.fetchrow(SQL["get-contact"], contact_id, call.company_id)
        if contact is None:
            raise NotFound("contact")
    address = contact["email"] if contact is not None and contact["email"] else PREVIEW_ADDRESS
    try:
        rendered = await render_for(content_of(campaign, template, sender), contact, address)
    except TemplateRefused as exc:
        raise ValidationFailed({exc.part: exc.reason}) from None
    except RenderFailed as exc:
        raise ValidationFailed({"html_content": str(exc)}) from None
    return rendered, sender


@api.add(
    "GET",
    "/api/email-campaigns/{id}/preview/",
    "The campaign rendered for a contact: subject, from name, HTML and text",
    "campaigns",
    permission=permission("campaigns", Action.UPDATE),
    query=PREVIEW_QUERY,
    response=PREVIEW,
)
async def campaign_preview(call: Call) -> dict[str, Any]:
    rendered, _ = await _rendered(call, call.query.get("contact_id"))
    return {
        "subject": rendered.subject,
        "from_name": rendered.from_name,
        "html": rendered.html,
        "text": rendered.text,
        "missing_variables": rendered.missing,
    }


@api.add(
    "POST",
    "/api/email-campaigns/{id}/test-send/",
    "Send the campaign, rendered for a contact and marked [Test], to up to 10 addresses",
    "campaigns",
    permission=permission("campaigns", Action.UPDATE),
    body=TEST_SEND,
    response=TEST_SENT,
)
async def campaign_test_send(call: Call) -> dict[str, Any]:
    body = call.body or {}
    if not 1 <= len(body["addresses"]) <= MAX_TEST_ADDRESSES:
        raise ValidationFailed({"addresses": f"give 1 to {MAX_TEST_ADDRESSES} addresses"})
    addresses = []
    for n, text in enumerate(body["addresses"]):
        try:
            addresses.append(normalize_address(text))
        except AddressError as exc:
            raise ValidationFailed({f"addresses[{n}]": str(exc)}) from None
    rendered, sender = await _rendered(call, body.get("contact_id"))
    if sender is None:
        raise ValidationFailed({"sender_profile_id": "a test send needs a sender profile"})
    queued = await send_tests(
        call.db, call.company_id, rendered, sender, addresses, call.services.max_age
    )
    call.audit(
        "email_campaign.test_send",
        "email_campaign",
        call.ids["id"],
        None,
        {"addresses": len(addresses), "contact_id": body.get("contact_id")},
    )
    return {"queued": queued, "subject": TEST_PREFIX + rendered.subject}
