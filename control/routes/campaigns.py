"""Email campaigns (blueprint §3.1, §6, §9.1): `/api/email-campaigns/`.

CRUD comes from control/resource.py; this module adds the campaign rules around it:
- codes: letters, digits and hyphens, unique among the company's live campaigns; when
  omitted, generated from the company's prefix and sequence (EC-00042);
- references (template, target and suppression lists, sender profile) must be live rows of
  the caller's company;
- editing is allowed in draft and paused only, and resets an approval (control/campaign_status);
- a campaign used by an active workflow, or being sent, cannot be deleted;
- actions: send (now or at a time), pause, resume, unschedule, cancel, approve, reject — the
  status machine and approval rules are control/campaign_status.py's; this module gives them
  the facts (settings, audience size, the day's volume) and stores the outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from control import campaign_lifecycle, campaign_runner, campaign_send, content_checks
from control import campaign_status as cs
from control.audience import AudienceRules, audience_count, requires_consent
from control.campaign_analytics import ANALYTICS, campaign_analytics
from control.content_checks import EmailContent
from control.errors import (
    Conflict,
    ContentRejected,
    Forbidden,
    InUse,
    NotFound,
    ValidationFailed,
)
from control.fields import Field, Schema, ro
from control.permissions import Action, permission
from control.resource import ResourceSpec, register
from control.routes.segments import check_criteria
from control.routing import Api, Call
from mta.queries import Queries
from tracker.events import TIMELINE_BUCKETS

SQL = Queries("control")
CODE_PATTERN = r"^[A-Za-z0-9-]+$"
CAMPAIGN_TYPES = ("regular", "newsletter", "promotional", "announcement", "ab_test", "automated")
STATUSES = tuple(s.value for s in cs.CampaignStatus)
APPROVAL_STATUSES = tuple(s.value for s in cs.ApprovalStatus)
EDITABLE = frozenset({cs.CampaignStatus.DRAFT, cs.CampaignStatus.PAUSED})
CODE_ATTEMPTS = 50

# The performance counters (control/performance.py keeps them current), in every shape that
# shows them.
COUNTERS = (
    ro("total_recipients", "integer"),
    ro("delivered_count", "integer"),
    ro("opened_count", "integer"),
    ro("clicked_count", "integer"),
    ro("bounced_count", "integer"),
    ro("unsubscribed_count", "integer"),
)

SCHEMA = Schema(
    "EmailCampaign",
    (
        ro("id", "id"),
        Field("campaign_name", required=True, min_length=1, max_length=200),
        Field("campaign_code", min_length=1, max_length=50, pattern=CODE_PATTERN),
        Field("subject_line", "header", required=True, min_length=1, max_length=200),
        Field("preheader_text", nullable=True, max_length=100),
        Field("campaign_type", required=True, enum=CAMPAIGN_TYPES),
        Field("email_template_id", "id", required=True),
        Field("sender_profile_id", "id", nullable=True),
        Field("target_list_id", "id", required=True),
        Field("segment_criteria", "object", default=dict),
        Field("suppression_list_id", "id", nullable=True),
        Field("campaign_id", "id", nullable=True, description="parent marketing campaign"),
        ro("campaign_status", enum=STATUSES),
        ro("approval_status", enum=APPROVAL_STATUSES),
        ro("rejection_reason", nullable=True),
        ro("approved_by_user_id", "id", nullable=True),
        ro("approved_at", "datetime", nullable=True),
        ro("scheduled_send_date", "datetime", nullable=True),
        ro("sent_date", "datetime", nullable=True),
        ro("sending_rate_per_hour", "integer", nullable=True),
        *COUNTERS,
        ro("created_by_user_id", "id", nullable=True),
        ro("updated_by_user_id", "id", nullable=True),
        ro("created_at", "datetime"),
        ro("updated_at", "datetime"),
    ),
)
FILTERS = (
    Field("campaign_status", enum=STATUSES),
    Field("campaign_type", enum=CAMPAIGN_TYPES),
    Field("approval_status", enum=APPROVAL_STATUSES),
    Field("target_list_id", "id"),
    Field("scheduled_from", "datetime", description="scheduled_send_date at or after"),
    Field("scheduled_to", "datetime", description="scheduled_send_date before"),
    Field("search", max_length=100),
)
SEND = Schema(
    "SendCampaign",
    (
        Field(
            "scheduled_send_date",
            "datetime",
            nullable=True,
            default=None,
            description="absent or null: send now",
        ),
        Field(
            "sending_rate_per_hour",
            "integer",
            nullable=True,
            default=None,
            minimum=1,
            maximum=100_000_000,
            description="messages per hour for this send (warming domains); null: no limit "
            "of its own",
        ),
    ),
)
REJECT = Schema("RejectCampaign", (Field("reason", "text", required=True, max_length=2000),))


def out(row: Any) -> dict[str, Any]:
    return {f.name: row[f.name] for f in SCHEMA.fields}


# --- facts the rules need -------------------------------------------------------------------


async def company_settings(call: Call) -> dict[str, Any]:
    return await call.db.fetchval(SQL["company-settings"], call.company_id) or {}


async def audience_size(call: Call, target_list_id: int, suppression_list_id: int | None) -> int:
    """The eligible audience (control/audience.py: every exclusion applied)."""
    rules = AudienceRules(
        call.company_id,
        target_list_id,
        suppression_list_id,
        requires_consent(await company_settings(call)),
    )
    return await audience_count(call.db, rules)


def approval_of(row: Any) -> cs.Approval:
    return cs.Approval(
        status=cs.ApprovalStatus(row["approval_status"]),
        created_by=row["created_by_user_id"] or 0,
        decided_by=row["approved_by_user_id"],
        decided_at=row["approved_at"],
        rejection_reason=row["rejection_reason"],
    )


async def _size_for(
    call: Call, policy: cs.ApprovalPolicy, target_list_id: int, suppression_list_id: int | None
) -> int:
    """The audience size when the approval rule depends on it, else 0: counting a large list
    on every save would cost more than the save (it is counted for real at send time)."""
    if policy.required or policy.audience_threshold is None:
        return 0
    return await audience_size(call, target_list_id, suppression_list_id)


async def check_refs(call: Call, merged: dict[str, Any]) -> None:
    ok = await call.db.fetchrow(
        SQL["campaign-refs"],
        call.company_id,
        merged["email_template_id"],
        merged["target_list_id"],
        merged.get("sender_profile_id"),
        merged.get("suppression_list_id"),
    )
    errors = {
        name: "no such record in your company"
        for name, flag in (
            ("email_template_id", "template_ok"),
            ("target_list_id", "list_ok"),
            ("sender_profile_id", "sender_ok"),
            ("suppression_list_id", "suppression_ok"),
        )
        if not ok[flag]
    }
    if errors:
        raise ValidationFailed(errors)


async def next_code(call: Call) -> str:
    for _ in range(CODE_ATTEMPTS):
        row = await call.db.fetchrow(SQL["next-campaign-code"], call.company_id)
        code = f"{row['code_prefix']}-{row['campaign_seq']:05d}"
        if not await call.db.fetchval(SQL["campaign-code-taken"], call.company_id, code):
            return code
    raise Conflict("could not generate a free campaign code; give campaign_code explicitly")


# --- CRUD hooks -----------------------------------------------------------------------------


async def before_create(call: Call, data: dict[str, Any]) -> None:
    await check_refs(call, data)
    await check_criteria(call.db, call.company_id, data["segment_criteria"], "segment_criteria")
    code = data.get("campaign_code")
    if code is None:
        data["campaign_code"] = await next_code(call)
    elif await call.db.fetchval(SQL["campaign-code-taken"], call.company_id, code):
        raise Conflict("campaign_code is already in use", field="campaign_code")
    policy = cs.ApprovalPolicy.from_settings(await company_settings(call))
    size = await _size_for(call, policy, data["target_list_id"], data.get("suppression_list_id"))
    data["approval_status"] = cs.request_approval(policy, size, call.user_id or 0).status


async def before_update(call: Call, data: dict[str, Any], current: Any) -> None:
    status = cs.CampaignStatus(current["campaign_status"])
    if status not in EDITABLE:
        raise Conflict(
            f"a {status} campaign cannot be edited (only draft or paused)",
            campaign_status=status,
        )
    merged = {**dict(current), **data}
    await check_refs(call, merged)
    if "segment_criteria" in data:
        await check_criteria(call.db, call.company_id, data["segment_criteria"], "segment_criteria")
    code = data.get("campaign_code")
    if (
        code is not None
        and code != current["campaign_code"]
        and await call.db.fetchval(SQL["campaign-code-taken"], call.company_id, code)
    ):
        raise Conflict("campaign_code is already in use", field="campaign_code")
    policy = cs.ApprovalPolicy.from_settings(await company_settings(call))
    size = await _size_for(call, policy, merged["target_list_id"], merged["suppression_list_id"])
    after = cs.approval_after_edit(approval_of(current), policy, size)
    data.update(
        approval_status=after.status,
        approved_by_user_id=None,
        approved_at=None,
        rejection_reason=None,
    )


async def before_delete(call: Call, current: Any) -> None:
    workflows = await call.db.fetch(SQL["workflows-using-campaign"], current["id"], call.company_id)
    if workflows:
        raise InUse(
            "the campaign is used by active workflows",
            workflows=[{"id": r["id"], "workflow_code": r["workflow_code"]} for r in workflows],
        )
    if current["campaign_status"] == cs.CampaignStatus.SENDING:
        raise Conflict("a campaign being sent cannot be deleted; pause or cancel it first")


async def after_write(call: Call, action: str, row: Any) -> None:
    if action == "create":
        # The list's subscribed members: the audience before suppressions, which are applied
        # (and the exact count stored) when the campaign is sent.
        count = await call.db.fetchval(
            SQL["subscribed-count"], row["target_list_id"], call.company_id
        )
        call.emit("email_campaign.created", {**out(row), "recipient_count": count})


PERFORMANCE = Schema(
    "CampaignPerformance",
    (
        ro("id", "id"),
        *COUNTERS,
        ro("delivery_rate", "number"),
        ro("open_rate", "number"),
        ro("click_rate", "number"),
        ro("bounce_rate", "number"),
        ro("unsubscribe_rate", "number"),
    ),
)


def rates(row: Any) -> dict[str, Any]:
    """Counters and rates: opens, clicks and unsubscribes per delivered; bounces per sent."""
    total, delivered = row["total_recipients"], row["delivered_count"]

    def ratio(n: int, d: int) -> float:
        return round(n / d, 4) if d else 0.0

    return {
        "id": row["id"],
        **{
            k: row[k]
            for k in PERFORMANCE.by_name
            if k.endswith("_count") or k == "total_recipients"
        },
        "delivery_rate": ratio(delivered, total),
        "open_rate": ratio(row["opened_count"], delivered),
        "click_rate": ratio(row["clicked_count"], delivered),
        "bounce_rate": ratio(row["bounced_count"], total),
        "unsubscribe_rate": ratio(row["unsubscribed_count"], delivered),
    }


ANALYTICS_READ = permission("analytics", Action.READ)
DETAIL = Schema(
    "EmailCampaignDetail",
    (
        *SCHEMA.fields,
        ro(
            "performance",
            "object",
            shape=PERFORMANCE,
            optional=True,
            description="with include_performance=true (permission analytics:read)",
        ),
        ro(
            "analytics",
            "object",
            shape=ANALYTICS,
            optional=True,
            description="with include_analytics=true (permission analytics:read)",
        ),
    ),
)
DETAIL_QUERY = (
    Field("include_performance", "boolean", default=False),
    Field(
        "include_analytics",
        "boolean",
        default=False,
        description="opens, clicks and unsubscribes, raw and human-only",
    ),
)


async def after_get(call: Call, row: Any, result: dict[str, Any]) -> None:
    """`?include_performance=true` / `?include_analytics=true` (blueprint §9.1): both need
    analytics:read besides campaigns:read."""
    wanted = [name for name in ("performance", "analytics") if call.query[f"include_{name}"]]
    if wanted and not (call.principal is not None and call.principal.can(ANALYTICS_READ)):
        raise Forbidden(f"permission {ANALYTICS_READ} required", permission=ANALYTICS_READ)
    if "performance" in wanted:
        result["performance"] = rates(row)
    if "analytics" in wanted:
        result["analytics"] = await campaign_analytics(call.db, row)


api = Api()
register(
    api,
    ResourceSpec(
        name="email_campaign",
        sql="campaign",
        path="/api/email-campaigns/",
        tag="campaigns",
        perm="campaigns",
        schema=SCHEMA,
        filters=FILTERS,
        before_create=before_create,
        before_update=before_update,
        before_delete=before_delete,
        after_write=after_write,
        get_query=DETAIL_QUERY,
        get_response=DETAIL,
        after_get=after_get,
    ),
)


# --- actions --------------------------------------------------------------------------------


async def _lock(call: Call) -> Any:
    row = await call.db.fetchrow(SQL["lock-campaign"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("email campaign")
    return row


async def _save(call: Call, current: Any, action: str, **changes: Any) -> dict[str, Any]:
    row = await call.db.fetchrow(
        SQL["update-campaign"], current["id"], call.company_id, call.user_id, changes
    )
    result = out(row)
    call.audit(f"email_campaign.{action}", "email_campaign", row["id"], out(current), result)
    return result


async def _gate(call: Call, current: Any, target: cs.CampaignStatus, send_at: datetime) -> int:
    """Check the move to scheduled/sending: status machine, approval (re-evaluated against
    today's audience), sender, send window and daily limit. Returns the audience size."""
    settings = await company_settings(call)
    size = await audience_size(call, current["target_list_id"], current["suppression_list_id"])
    approval = approval_of(current)
    policy = cs.ApprovalPolicy.from_settings(settings)
    if approval.status is cs.ApprovalStatus.NOT_REQUIRED and cs.needs_approval(policy, size):
        # The audience grew past the threshold since the campaign was saved.
        await call.db.execute(SQL["mark-approval-pending"], current["id"])
        approval = cs.Approval(cs.ApprovalStatus.PENDING, approval.created_by)
    cs.transition(current["campaign_status"], target, approval)
    if current["sender_profile_id"] is None:
        raise ValidationFailed({"sender_profile_id": "a campaign needs a sender profile to send"})
    await check_refs(call, dict(current))
    await check_send_content(call, current)
    sending = cs.SendingPolicy.from_settings(settings)
    start, _ = cs.local_day_bounds(send_at, sending.timezone)
    planned = await call.db.fetchval(
        SQL["recipients-scheduled-on"], call.company_id, start, current["id"]
    )
    now = datetime.now(UTC)
    # Sending now is checked as a send time one second from now: the window and the daily
    # limit apply; "in the future" holds by construction.
    cs.check_schedule(
        send_at if target is cs.CampaignStatus.SCHEDULED else now + timedelta(seconds=1),
        now,
        sending,
        audience_size=size,
        planned_that_day=planned,
    )
    return size


async def check_send_content(call: Call, campaign: Any) -> None:
    """The content checks again before sending (blueprint §6.4 "Deliverability Monitoring"):
    the template may have been saved before a rule changed, and the subject is checked too."""
    template = await call.db.fetchrow(
        SQL["get-template"], campaign["email_template_id"], call.company_id
    )
    sender = await call.db.fetchrow(
        SQL["get-sender"], campaign["sender_profile_id"], call.company_id
    )
    content = EmailContent(
        subject=campaign["subject_line"],
        html=template["html_content"],
        # A generated text part is generated again, from the HTML as it is now.
        text=None if template["text_generated"] else template["text_content"],
        mjml=template["mjml_source"],
        from_address=sender["from_address"],
    )
    report = await content_checks.check_content(content, spamd=call.services.spamd)
    if not report.ok:
        raise ContentRejected(report)
    try:
        await campaign_send.check_sendable(campaign, template, sender)
    except campaign_send.SendRefused as exc:
        raise ValidationFailed(
            {exc.field: exc.reason}, f"the campaign cannot be sent: {exc.field}: {exc.reason}"
        ) from None


@api.add(
    "POST",
    "/api/email-campaigns/{id}/send/",
    "Send a campaign now, or schedule it (scheduled_send_date)",
    "campaigns",
    permission=permission("campaigns", Action.SEND),
    body=SEND,
    response=SCHEMA,
    mfa_action="send",
)
async def send_campaign(call: Call) -> dict[str, Any]:
    current = await _lock(call)
    send_at = (call.body or {}).get("scheduled_send_date")
    await call.db.execute(
        SQL["set-campaign-sending-rate"],
        current["id"],
        call.company_id,
        (call.body or {}).get("sending_rate_per_hour"),
    )
    now = datetime.now(UTC)
    if send_at is None:
        size = await _gate(call, current, cs.CampaignStatus.SENDING, now)
        await start_sending(call, current)
        result = await _save(
            call,
            current,
            "send",
            campaign_status=cs.CampaignStatus.SENDING,
            sent_date=now,
            scheduled_send_date=None,
            # the audience counted now; the number of queue rows once they are all written
            total_recipients=size,
        )
        call.emit("email_campaign.sent", result)
        return result
    size = await _gate(call, current, cs.CampaignStatus.SCHEDULED, send_at)
    return await _save(
        call,
        current,
        "schedule",
        campaign_status=cs.CampaignStatus.SCHEDULED,
        scheduled_send_date=send_at,
        total_recipients=size,
    )


async def start_sending(call: Call, current: Any) -> None:
    """Freeze the version the queue rows will point at (in this request's transaction) and
    wake a campaign runner to enqueue it (control/campaign_runner.py)."""
    consent = requires_consent(await company_settings(call))
    await campaign_send.freeze(call.db, current["id"], call.company_id, consent)
    await call.db.execute("SELECT pg_notify($1, '')", campaign_runner.CHANNEL)


def _simple_move(
    action: str,
    target: cs.CampaignStatus,
    summary: str,
    on_queue: Callable[[Any, int, int], Awaitable[int]] | None = None,
) -> None:
    async def handler(call: Call) -> dict[str, Any]:
        current = await _lock(call)
        cs.transition(current["campaign_status"], target)
        if on_queue is not None:  # the campaign's queue rows follow (control/campaign_lifecycle)
            await on_queue(call.db, current["id"], call.company_id)
        return await _save(call, current, action, campaign_status=target)

    handler.__name__ = f"{action}_campaign"
    api.add(
        "POST",
        f"/api/email-campaigns/{{id}}/{action}/",
        summary,
        "campaigns",
        permission=permission("campaigns", Action.SEND),
        response=SCHEMA,
    )(handler)


_simple_move(
    "pause",
    cs.CampaignStatus.PAUSED,
    "Pause a scheduled or sending campaign",
    campaign_lifecycle.pause,
)
_simple_move(
    "cancel", cs.CampaignStatus.CANCELLED, "Cancel a campaign (final)", campaign_lifecycle.cancel
)
_simple_move("unschedule", cs.CampaignStatus.DRAFT, "Take a scheduled campaign back to draft")


@api.add(
    "POST",
    "/api/email-campaigns/{id}/resume/",
    "Resume a paused campaign (to its schedule, or sending)",
    "campaigns",
    permission=permission("campaigns", Action.SEND),
    response=SCHEMA,
    mfa_action="send",
)
async def resume_campaign(call: Call) -> dict[str, Any]:
    current = await _lock(call)
    now = datetime.now(UTC)
    when = current["scheduled_send_date"]
    if when is not None and when > now:
        await _gate(call, current, cs.CampaignStatus.SCHEDULED, when)
        return await _save(call, current, "resume", campaign_status=cs.CampaignStatus.SCHEDULED)
    await _gate(call, current, cs.CampaignStatus.SENDING, now)
    if await campaign_lifecycle.is_frozen(call.db, current["id"], call.company_id):
        await campaign_lifecycle.resume(call.db, current["id"], call.company_id)
        await call.db.execute("SELECT pg_notify($1, '')", campaign_runner.CHANNEL)
    else:  # paused before it was ever sent
        await start_sending(call, current)
    result = await _save(
        call,
        current,
        "resume",
        campaign_status=cs.CampaignStatus.SENDING,
        sent_date=current["sent_date"] or now,
    )
    call.emit("email_campaign.sent", result)
    return result


def _approver_permissions(call: Call) -> frozenset[str]:
    can = call.principal is not None and call.principal.can("campaigns:approve")
    return frozenset({cs.APPROVE_PERMISSION}) if can else frozenset()


@api.add(
    "POST",
    "/api/email-campaigns/{id}/approve/",
    "Approve a campaign pending approval (not its creator)",
    "campaigns",
    permission=permission("campaigns", Action.APPROVE),
    response=SCHEMA,
    mfa_action="approve",
)
async def approve_campaign(call: Call) -> dict[str, Any]:
    current = await _lock(call)
    now = datetime.now(UTC)
    decided = cs.approve(approval_of(current), call.user_id or 0, _approver_permissions(call), now)
    return await _save(
        call,
        current,
        "approve",
        approval_status=decided.status,
        approved_by_user_id=call.user_id,
        approved_at=now,
        rejection_reason=None,
    )


@api.add(
    "POST",
    "/api/email-campaigns/{id}/reject/",
    "Reject a campaign pending approval, with a reason",
    "campaigns",
    permission=permission("campaigns", Action.APPROVE),
    body=REJECT,
    response=SCHEMA,
    mfa_action="approve",
)
async def reject_campaign(call: Call) -> dict[str, Any]:
    current = await _lock(call)
    now = datetime.now(UTC)
    reason = (call.body or {})["reason"]
    decided = cs.reject(
        approval_of(current), call.user_id or 0, _approver_permissions(call), reason, now
    )
    return await _save(
        call,
        current,
        "reject",
        approval_status=decided.status,
        approved_by_user_id=None,
        approved_at=None,
        rejection_reason=decided.rejection_reason,
    )


@api.add(
    "GET",
    "/api/email-campaigns/{id}/performance/",
    "A campaign's performance counters and rates",
    "campaigns",
    permission=permission("analytics", Action.READ),
    response=PERFORMANCE,
)
async def campaign_performance(call: Call) -> dict[str, Any]:
    row = await call.db.fetchrow(SQL["get-campaign"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("email campaign")
    return rates(row)


@api.add(
    "GET",
    "/api/email-campaigns/{id}/analytics/",
    "A campaign's opens, clicks and unsubscribes: raw and human-only, rates, timeline",
    "campaigns",
    permission=ANALYTICS_READ,
    query=(
        Field(
            "bucket",
            enum=TIMELINE_BUCKETS,
            default="hour",
            description="timeline bucket (UTC)",
        ),
    ),
    response=ANALYTICS,
)
async def campaign_analytics_view(call: Call) -> dict[str, Any]:
    row = await call.db.fetchrow(SQL["get-campaign"], call.ids["id"], call.company_id)
    if row is None:
        raise NotFound("email campaign")
    return await campaign_analytics(call.db, row, timeline=call.query["bucket"])
