"""Submission options (category, campaign, list, tracking) read the same from every front end."""

from __future__ import annotations

import pytest

from mta.compose import ComposeError
from mta.submission_options import options_from_text, pop_option_headers

MESSAGE = (
    b"From: a@example.test\r\n"
    b"X-Sendmill-Category: marketing\r\n"
    b"Subject: hi\r\n"
    b"X-Sendmill-Tracking: opens,\r\n"
    b"  clicks\r\n"
    b"X-Sendmill-Other: kept\r\n"
    b"X-SENDMILL-CAMPAIGN-ID: 12\r\n"
    b"\r\n"
    b"X-Sendmill-List-Id: 9 (the body is not a header)\r\n"
)


def test_option_fields_are_read_and_removed_from_the_header_only() -> None:
    values, body = pop_option_headers(MESSAGE)
    assert values == {"category": "marketing", "tracking": "opens, clicks", "campaign_id": "12"}
    assert body == (
        b"From: a@example.test\r\nSubject: hi\r\nX-Sendmill-Other: kept\r\n\r\n"
        b"X-Sendmill-List-Id: 9 (the body is not a header)\r\n"
    )
    assert options_from_text(values) == {
        "category": "marketing",
        "campaign_id": 12,
        "tracking": {"opens": True, "clicks": True},
    }


def test_a_message_without_option_fields_is_returned_as_is() -> None:
    plain = b"From: a@example.test\r\n\r\nX-Sendmill-Category: marketing\r\n"
    assert pop_option_headers(plain) == ({}, plain)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"campaign_id": "seven"}, "campaign_id"),
        ({"list_id": "-1"}, "list_id"),
        ({"list_id": "1" * 25}, "list_id"),
        ({"tracking": "opens,everything"}, "tracking"),
    ],
)
def test_bad_option_values_name_the_option(values: dict[str, str], field: str) -> None:
    with pytest.raises(ComposeError) as bad:
        options_from_text(values)
    assert bad.value.field == field


def test_tracking_none_turns_both_off() -> None:
    assert options_from_text({"tracking": "none"}) == {
        "tracking": {"opens": False, "clicks": False}
    }
