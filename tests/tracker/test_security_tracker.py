"""Security of the tracker's handling of tenant content, as an auditor reads it: link
rewriting at delivery time is linear in the HTML, so no campaign can stall a delivery process
(issue 12, High 2)."""

from __future__ import annotations

import time

import pytest

from tracker.pages import without_refresh
from tracker.prepare import rewrite_links

HOSTILE = {
    "unclosed anchors": "<a " * 300_000,  # 900 KB: minutes before, [^>]* rescanned the rest
    "unclosed anchors with hrefs": '<a href="http://x.test/" ' * 40_000,
}


@pytest.mark.parametrize("html", HOSTILE.values(), ids=HOSTILE.keys())
def test_link_rewriting_is_linear_on_hostile_html(html: str) -> None:
    started = time.perf_counter()
    rewrite_links(html, lambda index, url: f"https://t.test/{index}", "https://t.test/")
    assert time.perf_counter() - started < 2.0


def test_ordinary_links_are_still_rewritten() -> None:
    html = '<p><a class="b" href="https://shop.test/a?x=1&amp;y=2">Shop</a> <a href=/rel>r</a></p>'
    out = rewrite_links(
        html, lambda index, url: f"https://t.test/{index}?u={url}", "https://t.test/"
    )
    assert 'href="https://t.test/0?u=https://shop.test/a?x=1&amp;y=2"' in out
    assert "href=/rel" in out


def test_the_view_in_browser_page_loses_meta_refresh_redirects() -> None:
    page = (
        '<head><meta charset="utf-8"><META HTTP-EQUIV="Refresh" content="0;url=https://evil.test">'
        "<meta http-equiv=refresh content=1></head><p>hi</p>"
    )
    assert without_refresh(page) == '<head><meta charset="utf-8"></head><p>hi</p>'
    started = time.perf_counter()
    without_refresh("<meta " * 200_000)
    assert time.perf_counter() - started < 2.0
