"""Campaign status machine, approval rules and schedule checks: pure code, tables of cases."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from control.campaign_status import (
    Approval,
    ApprovalPermissionDenied,
    ApprovalPolicy,
    ApprovalRequired,
    ApprovalStatus,
    CampaignStatus,
    NotPendingApproval,
    RejectionReasonMissing,
    ScheduleRejected,
    SelfApprovalRefused,
    SendingPolicy,
    SendWindow,
    SettingsError,
    TransitionNotAllowed,
    allowed_transitions,
    approval_after_edit,
    approve,
    check_schedule,
    local_day_bounds,
    needs_approval,
    reject,
    request_approval,
    transition,
)

S = CampaignStatus
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday

# --- status machine ------------------------------------------------------------------------------

# The whole table, written out: a move not listed here must be refused.
ALLOWED = {
    (S.DRAFT, S.SCHEDULED),
    (S.DRAFT, S.SENDING),
    (S.DRAFT, S.CANCELLED),
    (S.SCHEDULED, S.SENDING),
    (S.SCHEDULED, S.DRAFT),
    (S.SCHEDULED, S.PAUSED),
    (S.SCHEDULED, S.CANCELLED),
    (S.SENDING, S.SENT),
    (S.SENDING, S.PAUSED),
    (S.SENDING, S.CANCELLED),
    (S.PAUSED, S.SCHEDULED),
    (S.PAUSED, S.SENDING),
    (S.PAUSED, S.CANCELLED),
    (S.SENT, S.COMPLETED),
}


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_listed_transitions_are_allowed(current: S, target: S) -> None:
    assert transition(current, target) is target
    assert target in allowed_transitions(current)


@pytest.mark.parametrize(
    ("current", "target"),
    [pair for pair in itertools.product(S, S) if pair not in ALLOWED],
)
def test_every_other_transition_is_refused_with_the_allowed_targets(current: S, target: S) -> None:
    with pytest.raises(TransitionNotAllowed) as caught:
        transition(current, target)
    assert caught.value.current is current and caught.value.target is target
    assert set(caught.value.allowed) == {t for c, t in ALLOWED if c is current}
    assert f"cannot become {target}" in str(caught.value)


def test_a_refused_transition_carries_the_error_body_details() -> None:
    with pytest.raises(TransitionNotAllowed) as caught:
        transition(S.SENT, S.DRAFT)
    assert caught.value.error_code == "transition_not_allowed"
    assert caught.value.details == {"current": "sent", "target": "draft", "allowed": ["completed"]}


@pytest.mark.parametrize("final", [S.COMPLETED, S.CANCELLED])
def test_final_states_say_so(final: S) -> None:
    with pytest.raises(TransitionNotAllowed, match="none: it is final"):
        transition(final, S.DRAFT)


def test_statuses_accept_their_stored_string_values() -> None:
    assert transition("draft", "scheduled") is S.SCHEDULED  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "target", "allowed"),
    [
        (ApprovalStatus.PENDING, S.SCHEDULED, False),
        (ApprovalStatus.PENDING, S.SENDING, False),
        (ApprovalStatus.REJECTED, S.SENDING, False),
        (ApprovalStatus.APPROVED, S.SCHEDULED, True),
        (ApprovalStatus.APPROVED, S.SENDING, True),
        (ApprovalStatus.NOT_REQUIRED, S.SENDING, True),
        (ApprovalStatus.PENDING, S.CANCELLED, True),  # cancelling never needs approval
    ],
)
def test_scheduling_and_sending_wait_for_approval(
    status: ApprovalStatus, target: S, allowed: bool
) -> None:
    approval = Approval(status=status, created_by=1, rejection_reason="tone")
    if allowed:
        assert transition(S.DRAFT, target, approval) is target
    else:
        with pytest.raises(ApprovalRequired) as caught:
            transition(S.DRAFT, target, approval)
        assert caught.value.status is status


def test_a_rejected_campaign_reports_the_reason_when_sent() -> None:
    approval = Approval(ApprovalStatus.REJECTED, created_by=1, rejection_reason="wrong price")
    with pytest.raises(ApprovalRequired, match="wrong price"):
        transition(S.PAUSED, S.SENDING, approval)


# --- approval ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "audience", "needed"),
    [
        (ApprovalPolicy(), 10_000_000, False),
        (ApprovalPolicy(required=True), 1, True),
        (ApprovalPolicy(audience_threshold=1000), 1000, False),
        (ApprovalPolicy(audience_threshold=1000), 1001, True),
        (ApprovalPolicy(audience_threshold=0), 1, True),
    ],
)
def test_approval_is_needed_by_setting_or_audience_size(
    policy: ApprovalPolicy, audience: int, needed: bool
) -> None:
    assert needs_approval(policy, audience) is needed
    expected = ApprovalStatus.PENDING if needed else ApprovalStatus.NOT_REQUIRED
    assert request_approval(policy, audience, created_by=7).status is expected


PENDING = Approval(ApprovalStatus.PENDING, created_by="alice")


@pytest.mark.parametrize(
    ("approval", "user", "permissions", "error"),
    [
        (PENDING, "bob", {"read", "update"}, ApprovalPermissionDenied),
        (PENDING, "alice", {"approve"}, SelfApprovalRefused),
        (Approval(ApprovalStatus.APPROVED, "alice"), "bob", {"approve"}, NotPendingApproval),
        (Approval(ApprovalStatus.NOT_REQUIRED, "alice"), "bob", {"approve"}, NotPendingApproval),
    ],
)
def test_who_may_approve(
    approval: Approval, user: str, permissions: set[str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        approve(approval, user, permissions, NOW)
    with pytest.raises(error):
        reject(approval, user, permissions, "no", NOW)


def test_another_user_with_approve_permission_approves() -> None:
    approved = approve(PENDING, "bob", frozenset({"approve"}), NOW)
    assert (approved.status, approved.decided_by, approved.decided_at) == (
        ApprovalStatus.APPROVED,
        "bob",
        NOW,
    )
    assert approved.cleared and not PENDING.cleared


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_rejection_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(RejectionReasonMissing):
        reject(PENDING, "bob", {"approve"}, reason, NOW)  # type: ignore[arg-type]


def test_a_rejection_keeps_its_reason() -> None:
    rejected = reject(PENDING, "bob", {"approve"}, "  subject line misleading ", NOW)
    assert rejected.status is ApprovalStatus.REJECTED
    assert rejected.rejection_reason == "subject line misleading"


@pytest.mark.parametrize(
    ("before", "policy", "audience", "after"),
    [
        (ApprovalStatus.APPROVED, ApprovalPolicy(required=True), 10, ApprovalStatus.PENDING),
        (ApprovalStatus.REJECTED, ApprovalPolicy(required=True), 10, ApprovalStatus.PENDING),
        (ApprovalStatus.PENDING, ApprovalPolicy(required=True), 10, ApprovalStatus.PENDING),
        # The edit grew the audience past the threshold.
        (
            ApprovalStatus.NOT_REQUIRED,
            ApprovalPolicy(audience_threshold=100),
            101,
            ApprovalStatus.PENDING,
        ),
        (ApprovalStatus.APPROVED, ApprovalPolicy(), 10, ApprovalStatus.NOT_REQUIRED),
    ],
)
def test_edits_after_approval_reset_it(
    before: ApprovalStatus, policy: ApprovalPolicy, audience: int, after: ApprovalStatus
) -> None:
    edited = approval_after_edit(
        Approval(before, "alice", decided_by="bob", decided_at=NOW, rejection_reason="x"),
        policy,
        audience,
    )
    assert edited.status is after
    assert (edited.decided_by, edited.decided_at, edited.rejection_reason) == (None, None, None)
    assert edited.created_by == "alice"


def test_approval_policy_from_settings() -> None:
    policy = ApprovalPolicy.from_settings({"approval": {"audience_threshold": 5000}})
    assert policy == ApprovalPolicy(required=False, audience_threshold=5000)
    assert ApprovalPolicy.from_settings({}) == ApprovalPolicy()


@pytest.mark.parametrize(
    "settings",
    [
        {"approval": {"required": "yes"}},
        {"approval": {"audience_threshold": -1}},
        {"approval": {"audience_threshold": True}},
        {"approval": {"treshold": 10}},
        {"approval": []},
    ],
)
def test_bad_approval_settings_are_refused(settings: dict) -> None:
    with pytest.raises(SettingsError):
        ApprovalPolicy.from_settings(settings)


# --- schedule checks -----------------------------------------------------------------------------

PARIS_OFFICE = SendingPolicy.from_settings(
    {
        "sending": {
            "timezone": "Europe/Paris",
            "window": {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "08:00",
                "end": "20:00",
            },
            "daily_limit": 50_000,
        }
    }
)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("send_at", "audience", "planned", "codes"),
    [
        # Tue 25 Nov 2026 10:00 UTC = 11:00 in Paris (CET, UTC+1): fine.
        (_utc(2026, 11, 25, 10, 0), 1000, 0, set()),
        (_utc(2026, 11, 24, 8, 0), 1000, 0, {"in_past"}),
        (NOW, 1000, 0, {"in_past"}),
        # 19:30 UTC is 20:30 in Paris: after the window closes.
        (_utc(2026, 11, 25, 19, 30), 1000, 0, {"outside_window"}),
        # 06:59 UTC is 07:59 in Paris: one minute early; 07:00 UTC is 08:00: opens.
        (_utc(2026, 11, 25, 6, 59), 1000, 0, {"outside_window"}),
        (_utc(2026, 11, 25, 7, 0), 1000, 0, set()),
        # Saturday.
        (_utc(2026, 11, 28, 10, 0), 1000, 0, {"outside_window"}),
        # Daily limit: 49,000 already planned + 1,000 = 50,000 is allowed, 1,001 is not.
        (_utc(2026, 11, 25, 10, 0), 1000, 49_000, set()),
        (_utc(2026, 11, 25, 10, 0), 1001, 49_000, {"daily_limit"}),
        # Everything wrong at once is reported at once.
        (_utc(2026, 11, 21, 10, 0), 60_000, 0, {"in_past", "outside_window", "daily_limit"}),
        # Summer time: 1 Jul 2027 06:30 UTC is 08:30 in Paris (CEST, UTC+2) — inside.
        (_utc(2027, 7, 1, 6, 30), 10, 0, set()),
        (_utc(2027, 7, 1, 18, 30), 10, 0, {"outside_window"}),
    ],
)
def test_schedule_checks(send_at: datetime, audience: int, planned: int, codes: set[str]) -> None:
    if not codes:
        check_schedule(send_at, NOW, PARIS_OFFICE, audience_size=audience, planned_that_day=planned)
        return
    with pytest.raises(ScheduleRejected) as caught:
        check_schedule(send_at, NOW, PARIS_OFFICE, audience_size=audience, planned_that_day=planned)
    assert {p.code for p in caught.value.problems} == codes


def test_outside_window_names_the_window_and_the_next_opening() -> None:
    with pytest.raises(ScheduleRejected) as caught:
        check_schedule(_utc(2026, 11, 28, 10, 0), NOW, PARIS_OFFICE, audience_size=1)
    (problem,) = caught.value.problems
    assert "mon-fri 08:00-20:00" in problem.message and "Europe/Paris" in problem.message
    # Next opening: Monday 30 Nov 08:00 Paris = 07:00 UTC.
    assert problem.details["next_opening"] == "2026-11-30T07:00:00+00:00"
    assert caught.value.error_code == "schedule_rejected"
    (body,) = caught.value.details["problems"]
    assert body["code"] == "outside_window" and body["details"]["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (datetime(2026, 11, 24, 22, 0), True),  # Tue evening, window opened Tue
        (datetime(2026, 11, 25, 5, 59), True),  # Wed early morning, window opened Tue
        (datetime(2026, 11, 25, 6, 0), False),
        (datetime(2026, 11, 24, 12, 0), False),
        (datetime(2026, 11, 23, 23, 0), False),  # Mon evening: Monday not in the window
        (datetime(2026, 11, 23, 3, 0), False),  # Mon early morning: belongs to Sunday
    ],
)
def test_a_window_across_midnight_belongs_to_the_day_it_opens(
    local: datetime, inside: bool
) -> None:
    window = SendWindow(days=frozenset({1, 2}), start=time(22), end=time(6))  # tue, wed nights
    assert window.contains(local) is inside


def test_local_day_bounds_follow_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    # 25 Oct 2026: clocks go back, the local day lasts 25 hours.
    start, end = local_day_bounds(_utc(2026, 10, 25, 12, 0), paris)
    assert start == _utc(2026, 10, 24, 22, 0) and end == _utc(2026, 10, 25, 23, 0)
    # A moment late on the UTC day belongs to the next local day in Paris.
    start, _ = local_day_bounds(_utc(2026, 11, 24, 23, 30), paris)
    assert start == _utc(2026, 11, 24, 23, 0)


def test_default_policy_allows_any_future_time() -> None:
    check_schedule(_utc(2026, 11, 29, 3, 0), NOW, SendingPolicy.from_settings({}), audience_size=1)


@pytest.mark.parametrize(
    "sending",
    [
        {"timezone": "Mars/Olympus"},
        {"timezone": 3},
        {"window": {"start": "8am"}},
        {"window": {"start": "24:00"}},
        {"window": {"end": "25:00"}},
        {"window": {"start": "09:00", "end": "09:00"}},
        {"window": {"days": ["monday"]}},
        {"window": {"hours": "9-5"}},
        {"daily_limit": "lots"},
        {"daily_limit": -5},
        {"limit": 5},
    ],
)
def test_bad_sending_settings_are_refused(sending: dict) -> None:
    with pytest.raises(SettingsError):
        SendingPolicy.from_settings({"sending": sending})


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_schedule(datetime(2026, 12, 1, 10), NOW, PARIS_OFFICE, audience_size=1)
