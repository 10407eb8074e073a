"""The throttle engine: rate specs, token buckets, adaptive back-off, site keys, the fair queue.

Pure code, simulated time: every test passes `now` itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from mta.throttle import FLOOR_RATE, FairQueue, Rate, RateError, SiteThrottle, TokenBucket, site_key

# --- Rate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "per"),
    [
        ("100/h", 100, 3600),
        ("5/s", 5, 1),
        ("600/m", 600, 60),
        ("10000/d", 10000, 86400),
        ("2/sec", 2, 1),
        ("30/min", 30, 60),
        ("7/hour", 7, 3600),
        ("1/day", 1, 86400),
        ("1.5/h", 1.5, 3600),
        (" 100 / h ", 100, 3600),
    ],
)
def test_rate_parses_count_and_period(spec: str, count: float, per: float) -> None:
    rate = Rate.parse(spec)
    assert (rate.count, rate.per) == (count, per)
    assert rate.per_second == pytest.approx(count / per)


@pytest.mark.parametrize("spec", ["100/h", "5/s", "600/m", "10000/d", "1.5/h", "0.25/s", "1/m"])
def test_canonical_rate_specs_print_back_the_same(spec: str) -> None:
    assert str(Rate.parse(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("2/sec", "2/s"),
        ("30/min", "30/m"),
        ("7/hour", "7/h"),
        ("1/day", "1/d"),
        ("100.0/h", "100/h"),
    ],
)
def test_long_unit_names_print_in_the_short_canonical_form(spec: str, canonical: str) -> None:
    assert str(Rate.parse(spec)) == canonical
    assert Rate.parse(canonical) == Rate.parse(spec)


def test_a_rate_built_in_code_prints_a_spec_that_parses_back_to_it() -> None:
    for rate in (Rate(3000 / 7, 60), Rate(100 / 3, 3600), Rate(12.5, 1)):
        assert Rate.parse(str(rate)) == rate
    # A period that is no unit prints per second: the same speed, another spelling.
    odd = Rate(1, 4)
    assert str(odd) == "0.25/s"
    assert Rate.parse(str(odd)).per_second == odd.per_second


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("100", "expected '<count>/<unit>' such as '100/h'"),
        ("", "expected '<count>/<unit>'"),
        ("/h", "expected '<count>/<unit>'"),
        ("100/", "expected '<count>/<unit>'"),
        ("100/x", "unknown unit 'x'"),
        ("100/hours", "unknown unit 'hours'"),
        ("100/H", "unknown unit 'H'"),
        ("ten/h", "the count 'ten' is not a number"),
        ("-5/h", "the count '-5' is not a number"),
        ("1e3/h", "the count '1e3' is not a number"),
        ("inf/h", "the count 'inf' is not a number"),
        ("0/h", "the count must be greater than zero"),
        ("0.0/m", "the count must be greater than zero"),
    ],
)
def test_bad_rate_specs_are_refused_with_a_message_naming_the_problem(
    spec: str, message: str
) -> None:
    with pytest.raises(RateError) as caught:
        Rate.parse(spec)
    assert message in str(caught.value)
    assert repr(spec) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("count", "per"), [(0, 60), (-1, 60), (1, 0), (float("nan"), 1)])
def test_a_rate_must_be_positive_and_finite(count: float, per: float) -> None:
    with pytest.raises(RateError):
        Rate(count, per)


# --- TokenBucket ---------------------------------------------------------------------------------


def drive(bucket: TokenBucket, start: float, end: float) -> int:
    """Send as fast as the bucket allows from `start` until `end`, as the dispatcher does."""
    now, sent = start, 0
    while now < end:
        wait = bucket.take(now)
        if wait == 0.0:
            sent += 1
        else:
            assert wait > 0
            now += wait
    return sent


@pytest.mark.parametrize(
    ("spec", "seconds", "expected"),
    [
        ("60/m", 60, 60),  # burst of 1 at t=0, then one per second at t=1..59
        ("100/h", 3600, 100),
        ("10/s", 10, 10 + 99),  # burst of 10 (one second of rate), then t=0.1..9.9
        ("3000/m", 60, 50 + 2999),
    ],
)
def test_a_token_bucket_lets_the_rate_through_plus_its_burst(
    spec: str, seconds: float, expected: int
) -> None:
    rate = Rate.parse(spec)
    # Stop half an interval short of the end: a grant due exactly at `seconds` would be in or
    # out of the window depending on float rounding of the summed waits.
    end = seconds - 0.5 / rate.per_second
    assert drive(TokenBucket(rate), 0.0, end) == expected


def test_default_burst_is_one_second_of_rate_but_at_least_one() -> None:
    assert TokenBucket(Rate.parse("100/h")).capacity == 1
    assert TokenBucket(Rate.parse("60/m")).capacity == 1
    assert TokenBucket(Rate.parse("3000/m")).capacity == 50
    assert TokenBucket(Rate.parse("3000/m"), capacity=5).capacity == 5


def test_take_returns_the_wait_and_consumes_nothing_until_granted() -> None:
    bucket = TokenBucket(Rate.parse("60/m"))
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(1.0)
    assert bucket.take(100.5) == pytest.approx(0.5)  # the refused takes borrowed nothing
    assert bucket.take(101.0) == 0.0
    assert bucket.tokens(101.0) == pytest.approx(0.0)


def test_take_of_several_tokens_waits_for_all_of_them() -> None:
    bucket = TokenBucket(Rate.parse("2/s"), capacity=4)
    assert bucket.take(0.0, 4) == 0.0
    assert bucket.take(0.0, 3) == pytest.approx(1.5)
    assert bucket.take(1.5, 3) == 0.0
    with pytest.raises(ValueError, match="capacity"):
        bucket.take(2.0, 5)  # can never be granted: refusing beats waiting forever


def test_tokens_accrue_only_up_to_capacity_after_idle_time() -> None:
    bucket = TokenBucket(Rate.parse("10/s"))
    assert bucket.take(0.0, 10) == 0.0
    assert bucket.tokens(3600.0) == 10  # an hour idle does not bank an hour of mail


def test_a_clock_stepping_back_grants_nothing_extra() -> None:
    bucket = TokenBucket(Rate.parse("1/s"))
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0
    assert bucket.take(10.5) == pytest.approx(0.5)


def test_set_rate_settles_at_the_old_rate_and_clamps_to_the_new_burst() -> None:
    bucket = TokenBucket(Rate.parse("100/s"))
    assert bucket.take(0.0, 100) == 0.0
    bucket.set_rate(Rate.parse("10/s"), now=0.5)  # 50 tokens accrued at the old rate...
    assert bucket.capacity == 10
    assert bucket.tokens(0.5) == 10  # ...but no more than the new burst survive
    assert bucket.take(0.5, 10) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.1)  # and refill goes at the new rate
    bucket.set_rate(Rate.parse("100/s"), now=0.5)
    assert bucket.capacity == 100
    assert bucket.tokens(0.5) == pytest.approx(0.0)  # speeding up does not mint tokens


# --- SiteThrottle --------------------------------------------------------------------------------


def throttle(rate: str | None = "600/m", connections: int = 10, **knobs: Any) -> SiteThrottle:
    return SiteThrottle(
        connections=connections,
        messages_per_connection=100,
        rate=Rate.parse(rate) if rate else None,
        **knobs,
    )


def succeed_until(site: SiteThrottle, start: float, end: float, every: float = 1.0) -> float:
    """Record a success every `every` seconds from `start` to `end`; returns the end time."""
    now = start
    while now <= end:
        site.record_success(now)
        now += every
    return now


def test_connections_are_tracked_against_the_limit() -> None:
    site = throttle(connections=2)
    assert site.can_open_connection()
    site.connection_opened()
    site.connection_opened()
    assert not site.can_open_connection()
    assert site.active_connections == 2
    site.connection_closed()
    assert site.can_open_connection()


def test_a_site_throttle_lets_60_per_minute_through_in_60_seconds() -> None:
    site = throttle("60/m")
    now, sent = 0.0, 0
    while now < 60:
        wait = site.reserve_message(now)
        if wait:
            assert site.wait_hint(now) == pytest.approx(wait)
            now += wait
        else:
            sent += 1
    assert sent == 60


def test_an_unlimited_site_never_waits() -> None:
    site = throttle(rate=None)
    assert all(site.reserve_message(0.0) == 0.0 for _ in range(10_000))
    assert site.wait_hint(0.0) == 0.0
    assert site.effective_rate is None


def test_wait_hint_reserves_nothing() -> None:
    site = throttle("1/s")
    assert site.wait_hint(0.0) == 0.0
    assert site.wait_hint(0.0) == 0.0
    assert site.reserve_message(0.0) == 0.0
    assert site.wait_hint(0.25) == pytest.approx(0.75)
    assert site.reserve_message(1.0) == 0.0


def test_421_halves_rate_and_connections_then_recovers_gradually() -> None:
    site = throttle("600/m", connections=10)
    assert not site.slowed
    site.record_421(100.0)
    assert site.slowed
    assert site.effective_connections == 5
    assert site.effective_rate == Rate.parse("300/m")

    # The cool-down: successes raise nothing for 60 s.
    succeed_until(site, 100.0, 159.0)
    assert (site.effective_connections, site.effective_rate) == (5, Rate.parse("300/m"))

    # Then one step per 10 s: a connection and a tenth of the configured rate.
    site.record_success(160.0)
    assert (site.effective_connections, site.effective_rate) == (6, Rate.parse("360/m"))
    site.record_success(165.0)  # too soon for another step
    assert site.effective_connections == 6
    site.record_success(170.0)
    assert (site.effective_connections, site.effective_rate) == (7, Rate.parse("420/m"))

    succeed_until(site, 171.0, 400.0)
    assert not site.slowed
    assert site.effective_connections == 10
    assert site.effective_rate == Rate.parse("600/m")
    assert str(site.effective_rate) == "600/m"


def test_a_deferral_with_code_421_backs_off_at_once() -> None:
    site = throttle()
    site.record_deferral(0.0, 421)
    assert site.effective_connections == 5


@pytest.mark.parametrize(("run", "codes"), [(3, [451, 450, 452]), (2, [451, 451]), (1, [450])])
def test_a_run_of_4xx_deferrals_backs_off(run: int, codes: list[int]) -> None:
    site = throttle(deferral_run=run)
    for i, code in enumerate(codes):
        assert not site.slowed, f"slowed after only {i} deferrals"
        site.record_deferral(float(i), code)
    assert site.slowed
    assert site.effective_rate == Rate.parse("300/m")


def test_a_success_breaks_a_run_of_deferrals() -> None:
    site = throttle()
    site.record_deferral(0.0, 451)
    site.record_deferral(1.0, 451)
    site.record_success(2.0)
    site.record_deferral(3.0, 451)
    site.record_deferral(4.0, 451)
    assert not site.slowed
    assert site.snapshot()["deferral_run"] == 2


@pytest.mark.parametrize("code", [250, 550, 399, 500])
def test_a_deferral_must_be_a_4xx_code(code: int) -> None:
    with pytest.raises(ValueError, match="4xx"):
        throttle().record_deferral(0.0, code)


def test_simultaneous_421s_from_many_connections_halve_once() -> None:
    site = throttle("600/m", connections=10)
    for i in range(10):
        site.record_421(100.0 + i * 0.1)
    assert site.effective_connections == 5
    assert site.effective_rate == Rate.parse("300/m")
    assert site.backoffs == 1


def test_pushback_during_the_cool_down_prolongs_it() -> None:
    site = throttle("600/m", connections=10)
    site.record_421(0.0)
    site.record_421(5.0)  # same event: no second halving, but the cool-down restarts
    site.record_success(61.0)
    assert site.effective_connections == 5  # still cooling down until 65
    site.record_success(65.0)
    assert site.effective_connections == 6


def test_persistent_pushback_halves_again_after_the_gap() -> None:
    site = throttle("600/m", connections=10)
    for now, conns, rate in [(0, 5, "300/m"), (10, 2, "150/m"), (20, 1, "75/m")]:
        site.record_421(float(now))
        assert (site.effective_connections, site.effective_rate) == (conns, Rate.parse(rate))


@pytest.mark.parametrize(
    ("configured", "floor"),
    [
        ("600/m", FLOOR_RATE),  # halving stops at 1/m
        ("3000/h", FLOOR_RATE),
        ("100/d", Rate.parse("100/d")),  # already below the floor: left alone
        ("90/h", Rate.parse("60/h")),  # the floor in the configured unit
    ],
)
def test_back_off_never_goes_below_one_connection_and_the_floor_rate(
    configured: str, floor: Rate
) -> None:
    site = throttle(configured, connections=10)
    for i in range(50):
        site.record_421(i * 100.0)
    assert site.effective_connections == 1
    assert site.effective_rate is not None
    assert site.effective_rate.per_second == pytest.approx(floor.per_second)
    assert site.can_open_connection()  # one connection always remains to probe the site


@pytest.mark.parametrize(("configured", "connections"), [("600/m", 10), ("7/m", 3), ("1/s", 1)])
def test_recovery_never_exceeds_the_configured_limits(configured: str, connections: int) -> None:
    site = throttle(configured, connections=connections)
    for i in range(5):
        site.record_421(i * 20.0)
    limit = Rate.parse(configured)
    now = 200.0
    for _ in range(2000):
        site.record_success(now)
        rate = site.effective_rate
        assert rate is not None and rate.per_second <= limit.per_second + 1e-12
        assert site.effective_connections <= connections
        now += 1.0
    assert not site.slowed
    assert site.effective_rate == limit  # exactly, not 6.999999/m


def test_recovery_needs_successes() -> None:
    site = throttle()
    site.record_421(0.0)
    # Time alone lifts nothing: a site that accepts nothing is not probed harder.
    assert site.wait_hint(10_000.0) == 0.0
    assert site.slowed
    site.record_success(10_000.0)
    assert site.effective_connections == 6


def test_an_unlimited_site_is_halved_from_its_observed_throughput_then_unlimited_again() -> None:
    site = throttle(rate=None, connections=4)
    # 20 messages a second for 10 seconds.
    for i in range(200):
        assert site.reserve_message(i * 0.05) == 0.0
    site.record_421(10.0)
    assert site.effective_connections == 2
    assert site.effective_rate is not None
    assert site.effective_rate.per_second == pytest.approx(10.0, rel=0.15)
    assert site.reserve_message(10.0) == 0.0
    assert site.slowed

    succeed_until(site, 70.0, 300.0)
    assert site.effective_rate is None
    assert site.effective_connections == 4
    assert not site.slowed
    assert site.wait_hint(300.0) == 0.0


def test_an_unlimited_site_with_no_throughput_yet_only_halves_connections() -> None:
    site = throttle(rate=None, connections=8)
    site.record_421(0.0)  # refused at the first connection: no rate to halve from
    assert site.effective_connections == 4
    assert site.effective_rate is None
    assert site.slowed
    succeed_until(site, 60.0, 200.0)
    assert site.effective_connections == 8
    assert not site.slowed


def test_a_lower_connection_limit_stops_new_connections_until_enough_close() -> None:
    site = throttle(connections=4)
    for _ in range(4):
        site.connection_opened()
    site.record_421(0.0)
    assert site.effective_connections == 2
    site.connection_closed()
    site.connection_closed()
    assert not site.can_open_connection()
    site.connection_closed()
    assert site.can_open_connection()


def test_back_off_slows_the_token_bucket() -> None:
    site = throttle("60/m")
    assert site.reserve_message(0.0) == 0.0
    site.record_421(0.0)
    assert site.reserve_message(0.0) == pytest.approx(2.0)  # 30/m: one every two seconds


def test_snapshot_reports_limits_and_state_as_plain_values() -> None:
    site = throttle("600/m", connections=10)
    site.connection_opened()
    site.record_421(0.0)
    assert site.snapshot(15.0) == {
        "connections": 10,
        "effective_connections": 5,
        "active_connections": 1,
        "messages_per_connection": 100,
        "rate": "600/m",
        "effective_rate": "300/m",
        "slowed": True,
        "deferral_run": 0,
        "backoffs": 1,
        "cooldown_remaining": 45.0,
        "throughput_per_second": 0.0,
    }
    assert "cooldown_remaining" not in site.snapshot()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"connections": 0, "messages_per_connection": 1}, "connections"),
        ({"connections": 1, "messages_per_connection": 0}, "messages_per_connection"),
        ({"connections": 1, "messages_per_connection": 1, "deferral_run": 0}, "deferral_run"),
    ],
)
def test_site_throttle_refuses_limits_below_one(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SiteThrottle(**kwargs)


# --- site_key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "key"),
    [
        (
            ["gmail-smtp-in.l.google.com.", "ALT1.gmail-smtp-in.l.google.com"],
            "(alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com)",
        ),
        (["mx.example.com"], "(mx.example.com)"),
        (["b.example.", "a.example.", "b.example"], "(a.example,b.example)"),
    ],
)
def test_site_key_is_the_sorted_normalised_mx_host_names(hosts: list[str], key: str) -> None:
    assert site_key(hosts) == key


def test_domains_with_the_same_mx_hosts_in_any_order_share_a_site() -> None:
    one = site_key(["aspmx.l.google.com", "alt1.aspmx.l.google.com"])
    other = site_key(["ALT1.ASPMX.L.GOOGLE.COM.", "aspmx.l.google.com."])
    assert one == other
    assert one != site_key(["aspmx.l.google.com"])


def test_site_key_needs_a_host() -> None:
    with pytest.raises(ValueError):
        site_key([])


# --- FairQueue -----------------------------------------------------------------------------------


def drain(queue: FairQueue[str]) -> list[str]:
    out = []
    while queue:
        out.append(queue.pop())
    return out


def test_fair_queue_interleaves_senders_and_serves_transactional_first() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        queue.push("campaigner", 1, f"bulk-a{i}")
    for i in range(2):
        queue.push("shop", 1, f"bulk-b{i}")
    queue.push("bank", 0, "reset-c0")
    queue.push("shop", 0, "receipt-b0")
    queue.push("bank", 0, "reset-c1")
    assert len(queue) == 9
    assert drain(queue) == [
        "reset-c0",
        "receipt-b0",
        "reset-c1",
        "bulk-a0",
        "bulk-b0",
        "bulk-a1",
        "bulk-b1",
        "bulk-a2",
        "bulk-a3",
    ]


def test_a_campaign_does_not_hold_back_another_tenants_mail() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(100_000):
        queue.push(1, 1, f"campaign-{i}")
    queue.push(2, 1, "newsletter")
    assert [queue.pop(), queue.pop()] == ["campaign-0", "newsletter"]
    queue.push(3, 0, "password-reset")
    assert queue.pop() == "password-reset"


def test_transactional_mail_pushed_later_goes_before_queued_bulk() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push(1, 1, "bulk")
    assert queue.pop() == "bulk"
    queue.push(1, 1, "bulk-2")
    queue.push(1, 0, "transactional")
    assert drain(queue) == ["transactional", "bulk-2"]


def test_a_sender_returning_joins_the_back_of_the_rotation() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a", 1, "a0")
    queue.push("b", 1, "b0")
    queue.push("b", 1, "b1")
    assert queue.pop() == "a0"
    queue.push("c", 1, "c0")
    queue.push("a", 1, "a1")  # a emptied, so it comes back after b and c
    assert drain(queue) == ["b0", "c0", "a1", "b1"]


def test_fair_queue_counts_by_sender_and_raises_when_empty() -> None:
    queue: FairQueue[str] = FairQueue()
    assert queue.count_by_sender() == {}
    queue.push(7, 0, "x")
    queue.push(7, 1, "y")
    queue.push(9, 1, "z")
    assert queue.count_by_sender() == {7: 2, 9: 1}
    queue.pop()
    assert queue.count_by_sender() == {7: 1, 9: 1}
    drain(queue)
    assert queue.count_by_sender() == {}
    assert len(queue) == 0 and not queue
    with pytest.raises(IndexError):
        queue.pop()
