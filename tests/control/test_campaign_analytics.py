"""Campaign rates from tracking counts (control/campaign_analytics.py): unique recipients over
delivered mail, raw and human-only, and null where no honest figure exists."""

from __future__ import annotations

from control.campaign_analytics import rates
from tracker.events import KindCounts

NONE = KindCounts()


def test_rates_count_unique_recipients_over_delivered_raw_and_human() -> None:
    counts = {
        "open": KindCounts(
            total=9, unique_recipients=6, human_total=4, human_unique_recipients=3, machine_total=5
        ),
        "click": KindCounts(
            total=3, unique_recipients=2, human_total=1, human_unique_recipients=1, machine_total=2
        ),
        "unsubscribe": KindCounts(
            total=1, unique_recipients=1, human_total=1, human_unique_recipients=1
        ),
    }
    assert rates(counts, 10) == {
        "open_rate": 0.6,
        "human_open_rate": 0.3,
        "click_rate": 0.2,
        "human_click_rate": 0.1,
        "human_click_to_open_rate": 0.3333,
        "unsubscribe_rate": 0.1,
        "open_machine_share": 0.5556,
        "click_machine_share": 0.6667,
    }


def test_nothing_delivered_or_no_events_gives_null_rates_not_zero() -> None:
    figures = rates({"open": NONE, "click": NONE, "unsubscribe": NONE}, 0)
    assert set(figures.values()) == {None}
    figures = rates({"open": NONE, "click": NONE, "unsubscribe": NONE}, 100)
    assert figures["open_rate"] == 0.0 and figures["open_machine_share"] is None


def test_aggregate_only_events_have_no_unique_rate() -> None:
    # tracking.per_recipient = false: events carry no recipient, so nobody can be counted once
    anonymous = KindCounts(total=40, human_total=30, machine_total=10)
    figures = rates({"open": anonymous, "click": anonymous, "unsubscribe": NONE}, 100)
    assert figures["open_rate"] is None and figures["human_click_rate"] is None
    assert figures["human_click_to_open_rate"] is None
    assert figures["open_machine_share"] == 0.25  # totals still tell the machine share
