"""Tracked mail end to end: submitted over HTTP to the running daemon, delivered to a test MX,
parsed as a recipient's client would, then its links, pixel and one-click unsubscribe followed
with a real HTTP client against the daemon's tracker listener."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dkim
import httpx
import pytest

from mta import credentials, tenants
from mta.daemon import Daemon
from tests.support.delivery import dns_txt, serve_dkim_key
from tests.support.fixtures_daemon import TEST_DOMAIN

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
HTML = """<html><body>
<p>Hello! <a href="https://shop.example.com/sale?x=1&amp;y=2">See the sale</a></p>
<p><a href='https://shop.example.com/blog'>Blog</a>
<a href="mailto:help@shop.example.com">Mail us</a> <a href="tel:+4912345">Call</a>
<a href="#top">Top</a> <a data-sendmill-notrack href="https://shop.example.com/private">Own</a>
<a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{view_url}}">View online</a></p>
</body></html>"""


# The lists and campaign the submissions below name: ids are checked against the company.
OWN_LISTS = (3, 4, 5, 9)
OWN_CAMPAIGN = 77


async def _api_key(daemon: Daemon) -> str:
    company = await tenants.ensure_company(daemon.db, "acme")
    await daemon.db.execute(
        "INSERT INTO email_lists (id, company_id, list_name, list_code, list_type, source_type)"
        " SELECT i, $1, 'L' || i, 'L' || i, 'static', 'manual' FROM unnest($2::bigint[]) i"
        " ON CONFLICT DO NOTHING",
        company,
        list(OWN_LISTS),
    )
    template = await daemon.db.fetchval(
        "INSERT INTO email_templates (company_id, template_name, template_code, template_type,"
        " category, html_content) VALUES ($1, 'T', 'T', 'newsletter', 'marketing', '<p>x</p>')"
        " RETURNING id",
        company,
    )
    await daemon.db.execute(
        "INSERT INTO email_campaigns (id, company_id, campaign_name, campaign_code, subject_line,"
        " campaign_type, email_template_id, target_list_id)"
        " VALUES ($1, $2, 'C', 'C', 'S', 'promotional', $3, $4) ON CONFLICT DO NOTHING",
        OWN_CAMPAIGN,
        company,
        template,
        OWN_LISTS[0],
    )
    return (await credentials.create_api_key(daemon.db, company)).secret


async def _send(daemon: Daemon, key: str, to: str | list[str], **fields: Any) -> dict:
    body = {
        "from": f"news@{TEST_DOMAIN}",
        "to": [to] if isinstance(to, str) else to,
        "subject": "Our sale",
        "text": "Sale! Unsubscribe: {{unsubscribe_url}}",
        "html": HTML,
        **fields,
    }
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        response = await client.post(
            "/api/v1/messages", headers={"Authorization": f"Bearer {key}"}, json=body
        )
    assert response.status_code == 202, response.text
    return response.json()


async def _wait_state(daemon: Daemon, recipient_id: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = await daemon.db.fetchval(
            "SELECT state::text FROM recipients WHERE id = $1", recipient_id
        )
        if state in ("delivered", "bounced", "suppressed", "expired"):
            return state
        assert time.monotonic() < deadline, f"recipient still {state}"
        await asyncio.sleep(0.1)


async def _events(daemon: Daemon, count: int, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await daemon.db.fetch("SELECT * FROM tracking_events ORDER BY id")
        if len(rows) >= count or time.monotonic() > deadline:
            return [dict(r) for r in rows]
        await asyncio.sleep(0.05)


def _links(html_text: str) -> list[str]:
    return re.findall(r"""href=["']([^"']*)["']""", html_text)


async def test_tracked_marketing_mail_round_trip(daemon_factory, dns_server, mx_factory, mx_port):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    serve_dkim_key(dns_server, daemon)
    key = await _api_key(daemon)
    base = daemon.config.tracker.base_url

    sent = await _send(
        daemon,
        key,
        "dana@dest.test",
        category="marketing",
        campaign_id=77,
        list_id=3,
        tracking={"opens": True, "clicks": True, "utm": {"utm_source": "newsletter"}},
    )
    recipient_id = sent["recipients"][0]["id"]
    assert await _wait_state(daemon, recipient_id) == "delivered"

    # --- what arrived: signed, with RFC 8058 headers and per-recipient links -------------
    received = mx.messages[0]
    data = received.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=dns_txt(dns_server.port))
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert "X-Sendmill-Tracking" not in msg
    signed = msg["DKIM-Signature"].lower().replace(" ", "").replace("\r\n", "")
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = re.match(r"<([^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert unsubscribe_url.startswith(f"{base}/u/")
    html_part = msg.get_body(("html",)).get_content()
    text_part = msg.get_body(("plain",)).get_content()
    assert unsubscribe_url in text_part  # placeholder filled in the text part too

    links = _links(html_part)
    tracked = [u for u in links if u.startswith(f"{base}/c/")]
    assert len(tracked) == 2  # the sale and the blog
    untouched = {
        "mailto:help@shop.example.com",
        "tel:+4912345",
        "#top",
        "https://shop.example.com/private",
        unsubscribe_url,
    }
    assert untouched <= set(links)
    assert "data-sendmill-notrack" not in html_part
    assert any(u.startswith(f"{base}/v/") for u in links)
    pixel = re.search(r'<img src="([^"]+)"', html_part).group(1)
    assert pixel.startswith(f"{base}/o/")

    async with httpx.AsyncClient(headers={"User-Agent": BROWSER}) as client:
        # --- the pixel: GIF, no-store, one open ----------------------------------------
        response = await client.get(pixel)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert len(response.content) == 43 and response.content.startswith(b"GIF89a")
        assert "no-store" in response.headers["cache-control"]

        # --- the click: HEAD is not counted, GET redirects with the campaign's UTM ------
        head = await client.head(tracked[0])
        assert head.status_code == 302
        response = await client.get(tracked[0])
        assert response.status_code == 302
        target = urlsplit(response.headers["location"])
        assert (target.scheme, target.netloc, target.path) == ("https", "shop.example.com", "/sale")
        assert dict(parse_qsl(target.query)) == {"x": "1", "y": "2", "utm_source": "newsletter"}

        # --- forged and tampered tokens: 404, never a redirect; the pixel stays a GIF ---
        token = tracked[1].rsplit("/", 1)[1]
        tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
        for bad in (f"{base}/c/{tampered}", f"{base}/c/{token[:20]}", f"{base}/c/{pixel[-26:]}"):
            response = await client.get(bad)
            assert response.status_code == 404 and "location" not in response.headers
        response = await client.get(f"{base}/o/{tampered}")
        assert response.status_code == 200 and response.content[:6] == b"GIF89a"

        # --- view in browser ------------------------------------------------------------
        view = next(u for u in links if u.startswith(f"{base}/v/"))
        response = await client.get(view)
        assert response.status_code == 200 and "See the sale" in response.text
        assert f"{base}/o/" not in response.text  # viewing online is not an open
        # the tenant's HTML on our origin: no forms, no <base>, sandboxed (issue 12.7)
        policy = response.headers["content-security-policy"]
        assert "form-action 'none'" in policy and "base-uri 'none'" in policy
        assert "sandbox" in policy and "allow-scripts" not in policy

        # --- one-click unsubscribe (RFC 8058): a bare POST, 200, effective at once ------
        response = await client.post(
            unsubscribe_url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        again = await client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200  # idempotent

    rows = await daemon.db.fetch("SELECT company_id, address, list_id, source FROM unsubscriptions")
    assert [(r["address"], r["list_id"], r["source"]) for r in rows] == [
        ("dana@dest.test", 3, "one-click")
    ]
    # the next marketing mail to that list is never sent; another list still is
    blocked = await _send(daemon, key, "dana@dest.test", category="marketing", list_id=3)
    assert blocked["recipients"][0]["state"] == "suppressed"
    other = await _send(daemon, key, "dana@dest.test", category="marketing", list_id=4)
    assert await _wait_state(daemon, other["recipients"][0]["id"]) == "delivered"

    # --- the events: exactly one open, one click (a scanner-fast one), two unsubscribes --
    events = await _events(daemon, 4)
    kinds = sorted(e["kind"] for e in events)
    assert kinds == ["click", "open", "unsubscribe", "unsubscribe"]
    click = next(e for e in events if e["kind"] == "click")
    assert (click["recipient_id"], click["campaign_id"], click["list_id"]) == (recipient_id, 77, 3)
    assert click["link_index"] == 0 and click["url"].startswith("https://shop.example.com/sale")
    # clicked within seconds of delivery: counted, but as a machine (link scanners do this)
    assert click["machine"] and click["machine_reason"] == "clicked_within_seconds_of_delivery"
    opened = next(e for e in events if e["kind"] == "open")
    assert not opened["machine"] and opened["user_agent"] == BROWSER
    assert str(opened["ip"]) == "127.0.0.0"  # anonymised to the /24 by default


async def test_untracked_transactional_mail_is_left_as_submitted(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    key = await _api_key(daemon)
    sent = await _send(daemon, key, "erin@dest.test")  # transactional, no tracking asked
    assert await _wait_state(daemon, sent["recipients"][0]["id"]) == "delivered"
    msg = email.message_from_bytes(mx.messages[0].data, policy=email.policy.default)
    assert "List-Unsubscribe" not in msg
    html_part = msg.get_body(("html",)).get_content()
    assert "https://shop.example.com/sale?x=1&amp;y=2" in html_part
    assert daemon.config.tracker.base_url not in html_part
    stored = await daemon.db.fetchval("SELECT body FROM messages")
    assert not stored.lower().startswith(b"x-sendmill-tracking")


async def test_mailto_unsubscribe_reaches_the_bounce_processor(
    daemon_factory, dns_server, mx_factory, mx_port
):
    """With `unsubscribe_mailto`, List-Unsubscribe also names unsubscribe+HEX@bounce-domain: the
    bounce listener takes mail for it and the bounce processor unsubscribes from the list."""
    import aiosmtplib

    from mta.config import parse_hostport

    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(tracker={"unsubscribe_mailto": True})
    key = await _api_key(daemon)
    sent = await _send(daemon, key, "gus@dest.test", category="marketing", list_id=5)
    recipient_id = sent["recipients"][0]["id"]
    assert await _wait_state(daemon, recipient_id) == "delivered"
    msg = email.message_from_bytes(mx.messages[0].data, policy=email.policy.default)
    https, mailto = re.findall(r"<([^>]+)>", msg["List-Unsubscribe"])
    assert https.startswith(daemon.config.tracker.base_url + "/u/")
    address = mailto.removeprefix("mailto:")
    local, _, domain = address.partition("@")
    assert domain == daemon.config.bounce.domain and len(local) <= 64  # RFC 5321 §4.5.3.1.1
    assert local.startswith("unsubscribe+") and local == local.lower()

    host, port = parse_hostport(daemon.config.bounce.listen, 25, "bounce.listen")
    request = f"From: gus@dest.test\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n\r\n"
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10) as client:
        errors, _ = await client.sendmail("gus@dest.test", [address], request.encode())
    assert not errors
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = await daemon.db.fetch("SELECT address, list_id FROM unsubscriptions")
        if rows:
            break
        await asyncio.sleep(0.1)
    assert [(r["address"], r["list_id"]) for r in rows] == [("gus@dest.test", 5)]


async def test_raw_submissions_ask_for_tracking_in_the_query(
    daemon_factory, dns_server, mx_factory, mx_port
):
    from email.message import EmailMessage

    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    key = await _api_key(daemon)
    raw = EmailMessage()
    raw["From"] = f"news@{TEST_DOMAIN}"
    raw["To"] = "hal@dest.test"
    raw["Subject"] = "Raw"
    raw.set_content("plain")
    raw.add_alternative('<p><a href="https://shop.example.com/raw">raw</a></p>', subtype="html")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"}
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        for query, field in (("tracking=everything", "tracking"), ("list_id=x", "list_id")):
            bad = await client.post(f"/api/v1/messages?{query}", headers=headers, content=b"x")
            assert bad.status_code == 422 and bad.json()["details"]["field"] == field
        response = await client.post(
            "/api/v1/messages?category=marketing&list_id=9&tracking=clicks",
            headers=headers,
            content=raw.as_bytes(),
        )
    assert response.status_code == 202, response.text
    assert await _wait_state(daemon, response.json()["recipients"][0]["id"]) == "delivered"
    msg = email.message_from_bytes(mx.messages[0].data, policy=email.policy.default)
    html_part = msg.get_body(("html",)).get_content()
    base = daemon.config.tracker.base_url
    assert f'href="{base}/c/' in html_part and f"{base}/o/" not in html_part  # clicks only
    assert msg["List-Unsubscribe"].startswith(f"<{base}/u/")
    assert await daemon.db.fetchval("SELECT list_id FROM messages") == 9


async def test_smtp_submissions_ask_for_tracking_in_x_sendmill_fields(
    daemon_factory, dns_server, mx_factory, mx_port
):
    from email.message import EmailMessage

    import aiosmtplib

    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    await _api_key(daemon)  # acme's lists
    company = await tenants.ensure_company(daemon.db, "acme")
    login = await credentials.create_smtp_login(daemon.db, company, "newsletter")
    raw = EmailMessage()
    raw["From"] = f"news@{TEST_DOMAIN}"
    raw["To"] = "ivy@dest.test"
    raw["Subject"] = "Over SMTP"
    raw["X-Sendmill-Category"] = "marketing"
    raw["X-Sendmill-List-Id"] = "4"
    raw["X-Sendmill-Tracking"] = "opens, clicks"
    raw.set_content("plain")
    raw.add_alternative('<p><a href="https://shop.example.com/smtp">smtp</a></p>', subtype="html")
    host, port = daemon.config.smtp.listen.split(":")
    async with aiosmtplib.SMTP(hostname=host, port=int(port), start_tls=False) as client:
        await client.login(login.login, login.secret)
        bad = raw.as_bytes().replace(b"X-Sendmill-List-Id: 4", b"X-Sendmill-List-Id: four")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await client.sendmail(raw["From"], ["ivy@dest.test"], bad)
        assert refused.value.code == 554 and "list_id" in refused.value.message
        await client.sendmail(raw["From"], ["ivy@dest.test"], raw.as_bytes())
    rid = await daemon.db.fetchval("SELECT id FROM recipients")
    assert await _wait_state(daemon, rid) == "delivered"
    assert (
        await daemon.db.fetchval("SELECT category::text || list_id FROM messages") == "marketing4"
    )
    msg = email.message_from_bytes(mx.messages[0].data, policy=email.policy.default)
    assert not [name for name in msg if name.lower().startswith("x-sendmill")]
    html_part = msg.get_body(("html",)).get_content()
    base = daemon.config.tracker.base_url
    assert f'href="{base}/c/' in html_part and f"{base}/o/" in html_part
    assert msg["List-Unsubscribe"].startswith(f"<{base}/u/")


APPLE_MPP = "Mozilla/5.0"  # what Apple Mail Privacy Protection's proxies send
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"


def _fast_scanner_rules(tmp_path: Path) -> Path:
    """The shipped machine rules with the link-scanner window cut from 10 s to 1 s, so the test
    can click as a person after a short wait instead of ten seconds."""
    shipped = (resources.files("tracker") / "machine_rules.toml").read_text()
    assert shipped.count("within_seconds = 10") == 1
    path = tmp_path / "machine_rules.toml"
    path.write_text(shipped.replace("within_seconds = 10", "within_seconds = 1"))
    return path


async def test_the_control_api_reports_a_campaigns_raw_and_human_rates(
    daemon_factory, dns_server, mx_factory, mx_port, control, tmp_path
):
    """Campaign mail for two people through the daemon; one opens as a person and through
    Apple's proxy and clicks twice (a scanner, then herself), the other is opened only by
    Apple's proxy. The control API shows the raw and the human figures side by side."""
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(tracker={"machine_rules": str(_fast_scanner_rules(tmp_path))})
    company = await control.company("acme")  # the daemon's tenant
    admin = await control.user(company, "admin")
    ids = await control.fixtures(admin)
    campaign = ids["campaign"]
    api = control.client
    # The campaign's own list contact is left out (suppressed): its mail here is the two
    # messages submitted below with its campaign id.
    await daemon.db.execute(
        "INSERT INTO suppressions (company_id, address, reason)"
        " SELECT company_id, email, 'test' FROM contacts WHERE id = $1",
        ids["contact"],
    )
    sent = await api.post(f"/api/email-campaigns/{campaign}/send/", headers=admin.auth, json={})
    assert sent.status_code == 200, sent.text

    key = await _api_key(daemon)
    queued = await _send(
        daemon,
        key,
        ["dana@dest.test", "erin@dest.test"],
        category="marketing",
        campaign_id=campaign,
        list_id=ids["list"],
    )
    for row in queued["recipients"]:
        assert await _wait_state(daemon, row["id"]) == "delivered"
    delivered_at = time.monotonic()
    base = daemon.config.tracker.base_url
    mail: dict[str, tuple[str, list[str]]] = {}
    for received in mx.messages:
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        links = _links(msg.get_body(("html",)).get_content())
        pixel = re.search(r'<img src="([^"]+)"', msg.get_body(("html",)).get_content()).group(1)
        mail[received.rcpt_tos[0]] = (pixel, [u for u in links if u.startswith(f"{base}/c/")])
    dana_pixel, dana_links = mail["dana@dest.test"]
    erin_pixel, _ = mail["erin@dest.test"]

    async with httpx.AsyncClient() as client:
        # Apple's proxy fetches both pixels on arrival; Dana opens the message twice herself.
        for pixel in (dana_pixel, erin_pixel):
            response = await client.get(pixel, headers={"User-Agent": APPLE_MPP})
            assert response.status_code == 200
        for _ in range(2):
            response = await client.get(dana_pixel, headers={"User-Agent": BROWSER})
            assert response.status_code == 200
        # past the (shortened) scanner window: a scanner's click is known by its user
        # agent, and Dana's own click counts as a person's
        await asyncio.sleep(max(0.0, delivered_at + 2.1 - time.monotonic()))
        response = await client.get(dana_links[0], headers={"User-Agent": SCANNER})
        assert response.status_code == 302
        response = await client.get(dana_links[0], headers={"User-Agent": BROWSER})
        assert response.status_code == 302
    assert len(await _events(daemon, 6)) == 6

    expected_open = {
        "total": 4,
        "unique_recipients": 2,
        "human_total": 2,
        "human_unique_recipients": 1,
        "machine_total": 2,
    }
    expected_click = {
        "total": 2,
        "unique_recipients": 1,
        "human_total": 1,
        "human_unique_recipients": 1,
        "machine_total": 1,
    }
    r = await api.get(f"/api/email-campaigns/{campaign}/analytics/", headers=admin.auth)
    assert r.status_code == 200, r.text
    analytics = r.json()
    assert (analytics["recipients"], analytics["delivered"]) == (2, 2)
    assert analytics["open"] == expected_open and analytics["click"] == expected_click
    assert analytics["unsubscribe"]["total"] == 0
    assert (analytics["open_rate"], analytics["human_open_rate"]) == (1.0, 0.5)
    assert (analytics["click_rate"], analytics["human_click_rate"]) == (0.5, 0.5)
    assert analytics["human_click_to_open_rate"] == 1.0
    assert (analytics["open_machine_share"], analytics["click_machine_share"]) == (0.5, 0.5)
    reasons = {(m["kind"], m["reason"]): m["count"] for m in analytics["machine_reasons"]}
    assert reasons == {
        ("open", "apple_mail_privacy_protection"): 2,
        ("click", "security_scanner_user_agent"): 1,
    }
    [opens, clicks] = sorted(
        (b for b in analytics["timeline"]), key=lambda b: b["kind"], reverse=True
    )
    assert (opens["kind"], opens["total"], opens["human_total"]) == ("open", 4, 2)
    assert (clicks["kind"], clicks["total"], clicks["human_total"]) == ("click", 2, 1)

    # the same object inside the campaign, when asked for (blueprint §9.1)
    r = await api.get(f"/api/email-campaigns/{campaign}/", headers=admin.auth)
    assert "analytics" not in r.json()
    r = await api.get(
        f"/api/email-campaigns/{campaign}/?include_analytics=true", headers=admin.auth
    )
    assert r.status_code == 200, r.text
    embedded = r.json()["analytics"]
    assert embedded == {k: v for k, v in analytics.items() if k != "timeline"}

    # the dashboard: human rates next to the raw ones
    r = await api.get("/api/analytics/summary/", headers=admin.auth)
    summary = r.json()
    assert (summary["delivered"], summary["opened"], summary["human_opened"]) == (2, 2, 1)
    assert (summary["open_rate"], summary["human_open_rate"]) == (1.0, 0.5)
    assert (summary["click_rate"], summary["human_click_rate"]) == (0.5, 0.5)

    # another company sees nothing of it; a role without analytics:read is refused
    stranger = await control.user(await control.company(), "admin")
    r = await api.get(f"/api/email-campaigns/{campaign}/analytics/", headers=stranger.auth)
    assert r.status_code == 404
    writer = await control.user(company, "content_creator")
    r = await api.get(f"/api/email-campaigns/{campaign}/analytics/", headers=writer.auth)
    assert r.status_code == 403
    r = await api.get(
        f"/api/email-campaigns/{campaign}/?include_analytics=true", headers=writer.auth
    )
    assert r.status_code == 403 and r.json()["details"]["permission"] == "analytics:read"
