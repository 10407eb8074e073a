"""Security of bounce reading, as an auditor reads it: anyone on the Internet can send the
bounce listener a message, so reading it is linear in its size (issue 12, High 2)."""

from __future__ import annotations

import time

import pytest

from bounce.parse import html_text, parse_message

HOSTILE_MARKUP = {
    "unclosed tags": "<x" * 300_000,
    "unclosed line breaks": "<br" * 300_000,
    "unclosed style elements": "<style" * 150_000,
    "unclosed scripts between text": "text <script>" * 80_000,
}


@pytest.mark.parametrize("markup", HOSTILE_MARKUP.values(), ids=HOSTILE_MARKUP.keys())
def test_html_bounce_text_is_read_in_linear_time(markup: str) -> None:
    started = time.perf_counter()
    html_text(markup)
    assert time.perf_counter() - started < 2.0


def test_a_hostile_html_bounce_is_parsed_quickly() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.test\r\nTo: b+x@bounces.test\r\nSubject: Undelivered\r\n"
        b"Content-Type: text/html\r\n\r\n" + b"<style" * 150_000 + b"\r\n"
    )
    started = time.perf_counter()
    parse_message(raw)
    assert time.perf_counter() - started < 5.0


def test_style_script_and_head_are_left_out_and_text_kept() -> None:
    markup = (
        "<html><head><title>t</title></head><body><style>p{x:1}</style>"
        "<p>Delivery to <b>ann@x.test</b> failed</p><script>alert(1)</script>"
        "<br>550 5.1.1 user unknown<STYLE>unclosed"
    )
    text = html_text(markup)
    assert "Delivery to" in text and "ann@x.test" in text and "550 5.1.1 user unknown" in text
    assert "p{x:1}" not in text and "alert" not in text and "unclosed" not in text
    assert "\n\n550" in text.replace(" \n", "\n") or "\n550" in text
