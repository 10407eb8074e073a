"""Hostile template content cannot stall the daemon (issue 12, High 2): the checks run in
worker processes with a time limit, and the patterns they apply are linear. Measured through
the real control API: one tenant saves 1 MB of pathological content while another tenant's
requests keep being answered."""

from __future__ import annotations

import asyncio
import statistics
import time

from control.content_checks import EmailContent, check_content_sync
from tests.support.fixtures_control import MakeControl, template_body

HOSTILE_STYLE = "<style>" + "@media(" * 74_000 + "</style>"  # 518 KB: quadratic before
HOSTILE_TEXT = "www." + "a." * 250_000  # 500 KB of link-like text for the spam rules


async def test_another_tenants_requests_are_answered_within_100_ms_during_a_hostile_save(
    make_control: MakeControl,
) -> None:
    control = await make_control(max_body_size=4 * 1024 * 1024)
    attacker = await control.user(await control.company())
    bystander = await control.user(await control.company())
    body = template_body(
        "EVIL",
        html_content=HOSTILE_STYLE + '<a href="{{unsubscribe_url}}">' + "x<a " * 1000 + "</a>",
        text_content=HOSTILE_TEXT,
    )
    save = asyncio.create_task(
        control.client.post("/api/email-templates/", headers=attacker.auth, json=body, timeout=60)
    )
    latencies: list[float] = []
    async with asyncio.timeout(60):
        while not save.done():
            started = time.perf_counter()
            r = await control.client.get("/api/email-lists/", headers=bystander.auth)
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.02)
        saved = await save
    assert saved.status_code in (201, 422), saved.text
    assert len(latencies) >= 5, "the save finished before it could be measured"
    # The median and the 90th percentile: one scheduler hiccup on a shared 2-core machine is
    # not the event loop being blocked (which showed as seconds, every request).
    print(
        f"bystander latency ms: median {statistics.median(latencies) * 1000:.1f}, "
        f"max {max(latencies) * 1000:.1f}, n={len(latencies)}"
    )
    assert statistics.quantiles(latencies, n=10)[-1] < 0.100, latencies


async def test_a_check_past_its_time_limit_is_refused_with_a_clear_error(
    make_control: MakeControl,
) -> None:
    control = await make_control(content_check_timeout="0.05s", max_body_size=4 * 1024 * 1024)
    user = await control.user(await control.company())
    html = '<a href="{{unsubscribe_url}}">x</a>' + "<div><p>words and more words</p></div>" * 12_000
    r = await control.client.post(
        "/api/email-templates/", headers=user.auth, json=template_body("SLOW", html_content=html)
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error_code"] == "content_too_complex"
    assert "longer than 0.05 s" in body["message"]
    # the next check gets fresh workers
    control2 = await make_control()
    r = await control2.client.post(
        "/api/email-templates/", headers=user.auth, json=template_body("OK1")
    )
    assert r.status_code == 201, r.text


def test_media_queries_are_counted_in_linear_time() -> None:
    started = time.perf_counter()
    report = check_content_sync(EmailContent(subject="x", html=HOSTILE_STYLE))
    assert time.perf_counter() - started < 20  # ~100 s before, quadratic
    assert report.results
