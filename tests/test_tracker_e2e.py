"""Tracked mail end to end: submitted over HTTP to the running daemon, delivered to a test MX,
parsed as a recipient's client would, then its links, pixel and one-click unsubscribe followed
with a real HTTP client against the daemon's tracker listener."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dkim
import httpx

from mta import credentials, tenants
from mta.daemon import Daemon
from tests.fixtures_daemon import TEST_DOMAIN
from tests.test_delivery_e2e import _dns_txt, _serve_dkim_key

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
HTML = """<html><body>
<p>Hello! <a href="https://shop.example.com/sale?x=1&amp;y=2">See the sale</a></p>
<p><a href='https://shop.example.com/blog'>Blog</a>
<a href="mailto:help@shop.example.com">Mail us</a> <a href="tel:+4912345">Call</a>
<a href="#top">Top</a> <a data-sendmill-notrack href="https://shop.example.com/private">Own</a>
<a href="{{unsubscribe_url}}">Unsubscribe</a> <a href="{{view_url}}">View online</a></p>
</body></html>"""


async def _api_key(daemon: Daemon) -> str:
    company = await tenants.ensure_company(daemon.db, "acme")
    return (await credentials.create_api_key(daemon.db, company)).secret


async def _send(daemon: Daemon, key: str, to: str, **fields: Any) -> dict:
    body = {
        "from": f"news@{TEST_DOMAIN}",
        "to": [to],
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
    _serve_dkim_key(dns_server, daemon)
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
    assert await asyncio.to_thread(dkim.verify, data, dnsfunc=_dns_txt(dns_server.port))
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


async def test_mailto_unsubscribe_is_the_recipients_return_path(
    daemon_factory, dns_server, mx_factory, mx_port
):
    """With `unsubscribe_mailto`, List-Unsubscribe also names the recipient's VERP address with
    subject "unsubscribe": the bounce listener takes it and files it under the recipient row."""
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
    address, _, query = mailto.removeprefix("mailto:").partition("?")
    assert query == "subject=unsubscribe"
    assert address == mx.messages[0].mail_from  # the return path of this very message

    host, port = parse_hostport(daemon.config.bounce.listen, 25, "bounce.listen")
    request = f"From: gus@dest.test\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n\r\n"
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10) as client:
        errors, _ = await client.sendmail("gus@dest.test", [address], request.encode())
    assert not errors
    stored = await daemon.db.fetchrow("SELECT recipient_id, body FROM inbound_messages")
    assert stored["recipient_id"] == recipient_id and b"Subject: unsubscribe" in stored["body"]


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
