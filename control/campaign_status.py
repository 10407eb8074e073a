"""The campaign status machine, approval rules and schedule checks, in one place.

Pure code: no I/O, no clock. Functions take the current time (`now`, an aware datetime) and
small frozen dataclasses, and either return a new value or raise a specific exception that the
HTTP layer maps to a status code (`TransitionNotAllowed`, `ApprovalRequired` and
`NotPendingApproval` → 409, `ApprovalPermissionDenied` and `SelfApprovalRefused` → 403,
`ScheduleRejected`, `RejectionReasonMissing` and `SettingsError` → 422). Every one is a
`CampaignRuleError` with an `error_code` and JSON-ready `details` for the error body.

Status (blueprint §6.3 "draft → scheduled → sent → completed", with paused and cancelled):

    draft      → scheduled, sending (send now), cancelled
    scheduled  → sending, draft (unschedule), paused, cancelled
    sending    → sent, paused, cancelled
    paused     → scheduled, sending (resume), cancelled
    sent       → completed
    completed, cancelled: final

`TRANSITIONS` is the only list of allowed moves; `transition()` enforces it and the approval
gate: a campaign that needs approval cannot enter `scheduled` or `sending` until approved.

Approval (issue 3 §6): a campaign needs approval when the company setting says so or its audience
is over the company's threshold. Only a user holding the `approve` permission who is not the
campaign's creator may approve or reject it; a rejection carries a reason; any edit of an
approved (or rejected) campaign puts it back to pending.

Schedule checks (blueprint §6.1 "Schedule Validation", §6.2 `clean_sending_constraints`): the
send time is in the future, inside the company's send window (days and hours in the company's
time zone, via zoneinfo), and the day's planned volume plus this audience stays under the daily
sending limit.

Company settings read (the `companies.settings` jsonb document; absent keys take the defaults):

    {"approval": {"required": false,          # every campaign needs approval
                  "audience_threshold": null}, # or only audiences larger than this many recipients
     "sending":  {"timezone": "UTC",           # IANA zone name for the window and the daily limit
                  "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "start": "00:00", "end": "24:00"},  # local time, end exclusive;
                                                                  # start > end spans midnight
                  "daily_limit": null}}        # recipients per local day; null = no limit
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "APPROVE_PERMISSION",
    "TRANSITIONS",
    "Approval",
    "ApprovalError",
    "ApprovalPermissionDenied",
    "ApprovalPolicy",
    "ApprovalRequired",
    "ApprovalStatus",
    "CampaignRuleError",
    "CampaignStatus",
    "NotPendingApproval",
    "RejectionReasonMissing",
    "ScheduleProblem",
    "ScheduleRejected",
    "SelfApprovalRefused",
    "SendWindow",
    "SendingPolicy",
    "SettingsError",
    "TransitionNotAllowed",
    "allowed_transitions",
    "approval_after_edit",
    "approve",
    "check_schedule",
    "local_day_bounds",
    "needs_approval",
    "reject",
    "request_approval",
    "transition",
]


# --- status machine ------------------------------------------------------------------------------


class CampaignStatus(enum.StrEnum):
    """Where a campaign is in its life; the values are what the API and the database store."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    COMPLETED = "completed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


_S = CampaignStatus

#: Every allowed move. Anything not listed is refused with `TransitionNotAllowed`.
TRANSITIONS: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    # Send now, schedule for later, or drop the draft.
    _S.DRAFT: frozenset({_S.SCHEDULED, _S.SENDING, _S.CANCELLED}),
    # The scheduler starts it; the user can unschedule (back to draft to edit), pause or cancel.
    _S.SCHEDULED: frozenset({_S.SENDING, _S.DRAFT, _S.PAUSED, _S.CANCELLED}),
    # Every recipient queued → sent; the user can pause or cancel what is not queued yet.
    _S.SENDING: frozenset({_S.SENT, _S.PAUSED, _S.CANCELLED}),
    # Resumes where it was: to the schedule, or straight back to sending.
    _S.PAUSED: frozenset({_S.SCHEDULED, _S.SENDING, _S.CANCELLED}),
    # The reporting period closes (results final).
    _S.SENT: frozenset({_S.COMPLETED}),
    _S.COMPLETED: frozenset(),
    _S.CANCELLED: frozenset(),
}

# Entering these states starts (or commits to) mail going out: the approval gate applies.
_GATED: frozenset[CampaignStatus] = frozenset({_S.SCHEDULED, _S.SENDING})


class CampaignRuleError(Exception):
    """Base of this module's refusals: a stable `error_code` and JSON-ready `details` for the
    API's error body `{"error_code", "message", "details"}`."""

    error_code = "campaign_rule"

    @property
    def details(self) -> dict[str, Any]:
        return {}


class TransitionNotAllowed(CampaignRuleError):
    """A status change not in `TRANSITIONS` (HTTP 409 listing `allowed`)."""

    error_code = "transition_not_allowed"

    def __init__(self, current: CampaignStatus, target: CampaignStatus) -> None:
        self.current = current
        self.target = target
        self.allowed: tuple[CampaignStatus, ...] = allowed_transitions(current)
        allowed = ", ".join(self.allowed) or "none: it is final"
        super().__init__(
            f"a {current} campaign cannot become {target}; allowed from {current}: {allowed}"
        )

    @property
    def details(self) -> dict[str, Any]:
        return {
            "current": str(self.current),
            "target": str(self.target),
            "allowed": [str(s) for s in self.allowed],
        }


class ApprovalRequired(CampaignRuleError):
    """Scheduling or sending a campaign that needs approval and is not approved (HTTP 409)."""

    error_code = "approval_required"

    def __init__(self, status: ApprovalStatus, reason: str | None = None) -> None:
        self.status = status
        self.rejection_reason = reason
        if status is ApprovalStatus.REJECTED:
            message = f"the campaign was rejected ({reason}); edit it and ask for approval again"
        else:
            message = "the campaign needs approval before it can be scheduled or sent"
        super().__init__(message)

    @property
    def details(self) -> dict[str, Any]:
        return {"approval_status": str(self.status), "rejection_reason": self.rejection_reason}


def allowed_transitions(current: CampaignStatus) -> tuple[CampaignStatus, ...]:
    """The statuses `current` may move to, in a stable order (the enum's order)."""
    targets = TRANSITIONS[CampaignStatus(current)]
    return tuple(s for s in CampaignStatus if s in targets)


def transition(
    current: CampaignStatus, target: CampaignStatus, approval: Approval | None = None
) -> CampaignStatus:
    """Check the move `current` → `target` and return `target`.

    Raises `TransitionNotAllowed` for a move not listed in `TRANSITIONS`, and `ApprovalRequired`
    when `target` is scheduled or sending and `approval` says the campaign is not cleared
    (`approval=None` means the caller has no approval record: nothing to gate).
    """
    current, target = CampaignStatus(current), CampaignStatus(target)
    if target not in TRANSITIONS[current]:
        raise TransitionNotAllowed(current, target)
    if target in _GATED and approval is not None and not approval.cleared:
        raise ApprovalRequired(approval.status, approval.rejection_reason)
    return target


# --- approval ------------------------------------------------------------------------------------

#: The RBAC permission a user needs to approve or reject a campaign.
APPROVE_PERMISSION = "approve"


class ApprovalStatus(enum.StrEnum):
    """The campaign's approval state (blueprint `approval_status`)."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Approval:
    """A campaign's approval record: who decided what, and when.

    `created_by` is the campaign's creator: the one user who may never approve it.
    """

    status: ApprovalStatus
    created_by: int | str
    decided_by: int | str | None = None
    decided_at: datetime | None = None
    rejection_reason: str | None = None

    @property
    def cleared(self) -> bool:
        """True when the campaign may be scheduled or sent as far as approval goes."""
        return self.status in (ApprovalStatus.NOT_REQUIRED, ApprovalStatus.APPROVED)


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """The company's approval rule (settings key `approval`)."""

    required: bool = False
    audience_threshold: int | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ApprovalPolicy:
        """Read `settings["approval"]`; absent keys take the defaults, wrong types raise."""
        section = _section(settings, "approval", {"required", "audience_threshold"})
        required = section.get("required", False)
        if not isinstance(required, bool):
            raise SettingsError("approval.required must be true or false")
        threshold = section.get("audience_threshold")
        if threshold is not None and not _is_count(threshold):
            raise SettingsError("approval.audience_threshold must be a whole number ≥ 0 or null")
        return cls(required=required, audience_threshold=threshold)


class ApprovalError(CampaignRuleError):
    """An approval or rejection that is not allowed."""

    error_code = "approval_refused"


class ApprovalPermissionDenied(ApprovalError):
    """The user lacks the `approve` permission (HTTP 403)."""

    error_code = "approval_permission_denied"


class SelfApprovalRefused(ApprovalError):
    """The campaign's creator tried to approve or reject it (HTTP 403): four eyes."""

    error_code = "self_approval_refused"


class NotPendingApproval(ApprovalError):
    """The campaign is not waiting for a decision (HTTP 409)."""

    error_code = "not_pending_approval"

    def __init__(self, status: ApprovalStatus) -> None:
        self.status = status
        super().__init__(f"the campaign is not pending approval (approval status: {status})")


class RejectionReasonMissing(ApprovalError):
    """A rejection without a reason (HTTP 422)."""

    error_code = "rejection_reason_missing"


def needs_approval(policy: ApprovalPolicy, audience_size: int) -> bool:
    """Whether a campaign of `audience_size` recipients needs approval under `policy`."""
    if policy.required:
        return True
    return policy.audience_threshold is not None and audience_size > policy.audience_threshold


def request_approval(policy: ApprovalPolicy, audience_size: int, created_by: int | str) -> Approval:
    """The approval record of a new campaign: pending if it needs approval, else not required."""
    status = (
        ApprovalStatus.PENDING
        if needs_approval(policy, audience_size)
        else ApprovalStatus.NOT_REQUIRED
    )
    return Approval(status=status, created_by=created_by)


def _check_decider(
    approval: Approval, user_id: int | str, permissions: frozenset[str] | set[str]
) -> None:
    if APPROVE_PERMISSION not in permissions:
        raise ApprovalPermissionDenied("approving campaigns needs the 'approve' permission")
    if user_id == approval.created_by:
        raise SelfApprovalRefused("a campaign must be approved by someone other than its creator")
    if approval.status is not ApprovalStatus.PENDING:
        raise NotPendingApproval(approval.status)


def approve(
    approval: Approval,
    user_id: int | str,
    permissions: frozenset[str] | set[str],
    now: datetime,
) -> Approval:
    """Approve a pending campaign as `user_id`; returns the new record."""
    _check_decider(approval, user_id, permissions)
    return dataclasses.replace(
        approval,
        status=ApprovalStatus.APPROVED,
        decided_by=user_id,
        decided_at=now,
        rejection_reason=None,
    )


def reject(
    approval: Approval,
    user_id: int | str,
    permissions: frozenset[str] | set[str],
    reason: str,
    now: datetime,
) -> Approval:
    """Reject a pending campaign as `user_id` with a reason the creator will read."""
    _check_decider(approval, user_id, permissions)
    reason = (reason or "").strip()
    if not reason:
        raise RejectionReasonMissing("a rejection needs a reason the author can act on")
    return dataclasses.replace(
        approval,
        status=ApprovalStatus.REJECTED,
        decided_by=user_id,
        decided_at=now,
        rejection_reason=reason,
    )


def approval_after_edit(approval: Approval, policy: ApprovalPolicy, audience_size: int) -> Approval:
    """The approval record after the campaign was edited.

    An approval covers the content that was approved: any edit sends an approved or rejected
    campaign back to pending. The need for approval is re-evaluated too, since an edit can grow
    the audience past the threshold (or the company can have changed its setting).
    """
    if not needs_approval(policy, audience_size):
        return Approval(status=ApprovalStatus.NOT_REQUIRED, created_by=approval.created_by)
    return Approval(status=ApprovalStatus.PENDING, created_by=approval.created_by)


# --- schedule checks -----------------------------------------------------------------------------

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SettingsError(CampaignRuleError, ValueError):
    """A company settings document with a wrong key or value (the API refuses it with 422)."""

    error_code = "invalid_settings"


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local days and hours when a company's campaigns may start.

    `days` are weekday numbers (Monday = 0). `start` ≤ t < `end` in local time; `end` = None
    means midnight at the end of the day ("24:00"). A window whose `start` is after its `end`
    spans midnight (22:00-06:00) and belongs to the day it opens on.
    """

    days: frozenset[int] = frozenset(range(7))
    start: time = time(0, 0)
    end: time | None = None

    def contains(self, local: datetime) -> bool:
        """Whether the local wall-clock time `local` is inside the window."""
        t = local.time().replace(tzinfo=None)
        if self.end is None or self.start < self.end:
            return (
                local.weekday() in self.days
                and self.start <= t
                and (self.end is None or t < self.end)
            )
        # Spans midnight: the evening part belongs to today, the morning part to yesterday.
        if t >= self.start:
            return local.weekday() in self.days
        if t < self.end:
            return (local.weekday() - 1) % 7 in self.days
        return False

    def describe(self) -> str:
        """Human text such as "mon-fri 08:00-20:00"."""
        days = ",".join(_DAY_NAMES[d] for d in sorted(self.days))
        if self.days == frozenset(range(5)):
            days = "mon-fri"
        elif self.days == frozenset(range(7)):
            days = "every day"
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end}"

    def next_opening(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first moment at or after `after` (aware) when the window is open, in UTC."""
        local = after.astimezone(tz)
        if self.contains(local):
            return after.astimezone(UTC)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tzinfo=tz)
            if opening >= local:
                return opening.astimezone(UTC)
        return None


@dataclass(frozen=True, slots=True)
class SendingPolicy:
    """The company's sending rules (settings key `sending`)."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    window: SendWindow = field(default_factory=SendWindow)
    daily_limit: int | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SendingPolicy:
        """Read `settings["sending"]`; absent keys take the defaults, wrong values raise."""
        section = _section(settings, "sending", {"timezone", "window", "daily_limit"})
        tz_name = section.get("timezone", "UTC")
        try:
            tz = ZoneInfo(tz_name) if isinstance(tz_name, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
        if tz is None:
            raise SettingsError(f"sending.timezone {tz_name!r} is not an IANA time zone name")
        limit = section.get("daily_limit")
        if limit is not None and not _is_count(limit):
            raise SettingsError("sending.daily_limit must be a whole number ≥ 0 or null")
        return cls(timezone=tz, window=_parse_window(section.get("window", {})), daily_limit=limit)


@dataclass(frozen=True, slots=True)
class ScheduleProblem:
    """One reason a send time is refused: a stable code, a message, and facts for the UI."""

    code: str  # "in_past" | "outside_window" | "daily_limit"
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


class ScheduleRejected(CampaignRuleError):
    """A send time that breaks one or more schedule rules (HTTP 422 listing `problems`)."""

    error_code = "schedule_rejected"

    def __init__(self, problems: list[ScheduleProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))

    @property
    def details(self) -> dict[str, Any]:
        return {
            "problems": [
                {"code": p.code, "message": p.message, "details": dict(p.details)}
                for p in self.problems
            ]
        }


def local_day_bounds(moment: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start (inclusive) and end (exclusive) of the company-local day holding `moment`.

    The API counts the recipients already planned in this range to call `check_schedule`.
    Days are 23 or 25 hours long across DST changes, which is why this is not `+ 1 day` in UTC.
    """
    day: date = moment.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def check_schedule(
    send_at: datetime,
    now: datetime,
    policy: SendingPolicy,
    *,
    audience_size: int,
    planned_that_day: int = 0,
) -> None:
    """Refuse a send time with every broken rule at once (`ScheduleRejected`), or return None.

    `planned_that_day` is the number of recipients of the company's other campaigns already
    scheduled or sent in the local day of `send_at` (see `local_day_bounds`).
    """
    if send_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("send_at and now must be aware datetimes")
    problems: list[ScheduleProblem] = []
    if send_at <= now:
        problems.append(
            ScheduleProblem(
                "in_past",
                "the send time must be in the future",
                {"send_at": send_at.isoformat(), "now": now.isoformat()},
            )
        )
    local = send_at.astimezone(policy.timezone)
    if not policy.window.contains(local):
        opening = policy.window.next_opening(send_at, policy.timezone)
        problems.append(
            ScheduleProblem(
                "outside_window",
                f"{local.strftime('%a %Y-%m-%d %H:%M')} ({policy.timezone.key}) is outside the "
                f"company's send window ({policy.window.describe()})",
                {
                    "local_time": local.isoformat(),
                    "timezone": policy.timezone.key,
                    "window": policy.window.describe(),
                    "next_opening": opening.isoformat() if opening else None,
                },
            )
        )
    if policy.daily_limit is not None and planned_that_day + audience_size > policy.daily_limit:
        problems.append(
            ScheduleProblem(
                "daily_limit",
                f"{local.date().isoformat()} would have {planned_that_day + audience_size} "
                f"recipients, over the daily sending limit of {policy.daily_limit}",
                {
                    "day": local.date().isoformat(),
                    "daily_limit": policy.daily_limit,
                    "already_planned": planned_that_day,
                    "audience_size": audience_size,
                },
            )
        )
    if problems:
        raise ScheduleRejected(problems)


# --- settings parsing ----------------------------------------------------------------------------


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _section(settings: Mapping[str, Any], name: str, keys: set[str]) -> Mapping[str, Any]:
    section = settings.get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise SettingsError(f"settings.{name} must be an object")
    unknown = sorted(set(section) - keys)
    if unknown:
        raise SettingsError(f"unknown key(s) in settings.{name}: {', '.join(unknown)}")
    return section


def _parse_clock(value: object, key: str) -> time | None:
    """'HH:MM' → time; '24:00' → None (end of day)."""
    text = value if isinstance(value, str) else ""
    hours, _, minutes = text.partition(":")
    if hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        h, m = int(hours), int(minutes)
        if (h, m) == (24, 0):
            return None
        if h < 24 and m < 60:
            return time(h, m)
    raise SettingsError(f"sending.window.{key} must be a time 'HH:MM' (00:00 to 24:00)")


def _parse_window(window: object) -> SendWindow:
    if not isinstance(window, Mapping):
        raise SettingsError("sending.window must be an object")
    unknown = sorted(set(window) - {"days", "start", "end"})
    if unknown:
        raise SettingsError(f"unknown key(s) in sending.window: {', '.join(unknown)}")
    day_names = window.get("days", list(_DAY_NAMES))
    if not isinstance(day_names, list) or not all(
        isinstance(d, str) and d.lower() in _DAY_NAMES for d in day_names
    ):
        raise SettingsError(
            "sending.window.days must be a list of mon, tue, wed, thu, fri, sat, sun"
        )
    start = _parse_clock(window.get("start", "00:00"), "start")
    if start is None:
        raise SettingsError("sending.window.start must be before 24:00")
    end = _parse_clock(window.get("end", "24:00"), "end")
    if end == start:
        raise SettingsError("sending.window start and end must differ")
    return SendWindow(
        days=frozenset(_DAY_NAMES.index(d.lower()) for d in day_names), start=start, end=end
    )
