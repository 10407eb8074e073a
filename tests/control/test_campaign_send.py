"""Campaigns go out (issue 10), end to end through the running daemon: contacts on a list over
several domains, exclusions of every kind, the campaign sent over the control API, delivered to
test MX servers found through the stub DNS. Every eligible contact gets exactly one
personalised, DKIM-signed message with working tracking links and List-Unsubscribe; every
excluded contact gets nothing."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections import Counter

import dkim
import httpx

from tests.support.campaigns import CHEAP_CONTROL, add_contacts, campaign_setup
from tests.support.delivery import dns_txt, serve_dkim_key

DOMAINS = ("alpha.test", "beta.test", "gamma.test", "delta.test")


def _routes(dns_server, hosts: dict[str, str]) -> None:
    for domain, host in hosts.items():
        dns_server.add_mx(domain, [(10, f"mx.{domain}")])
        dns_server.add_a(f"mx.{domain}", host)


async def test_campaign_reaches_every_eligible_contact_once_and_no_excluded_one(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx_a = await mx_factory(host="127.0.0.2", port=mx_port)
    mx_b = await mx_factory(host="127.0.0.3", port=mx_port)
    _routes(
        dns_server, {d: ("127.0.0.2" if i % 2 == 0 else "127.0.0.3") for i, d in enumerate(DOMAINS)}
    )
    daemon = await daemon_factory(control=CHEAP_CONTROL)
    serve_dkim_key(dns_server, daemon)
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        eligible = [f"user{i}@{DOMAINS[i % 4]}" for i in range(240)]
        await add_contacts(s.db, s.company_id, s.list_id, eligible)
        excluded = {
            "unsubscribed": ["gone1@alpha.test", "gone2@beta.test"],
            "suppressed": ["bounced1@gamma.test"],
            "no_consent": ["unsure1@delta.test", "unsure2@alpha.test"],
            "suppression_list": ["vip1@beta.test", "vip2@gamma.test"],
            "blocklisted": ["blocked@delta.test", "anyone@blocked.test"],
            "erased": ["forget@alpha.test"],
        }
        await add_contacts(
            s.db,
            s.company_id,
            s.list_id,
            [a for k, v in excluded.items() if k != "no_consent" for a in v],
        )
        await add_contacts(s.db, s.company_id, s.list_id, excluded["no_consent"], opt_in="pending")
        # Each exclusion as a user would make it.
        await s.db.execute(
            "INSERT INTO unsubscriptions (company_id, address, list_id, source)"
            " VALUES ($1, 'gone1@alpha.test', 0, 'page'), ($1, 'gone2@beta.test', $2, 'page')",
            s.company_id,
            s.list_id,
        )
        await s.db.execute(
            "INSERT INTO suppressions (company_id, address, reason)"
            " VALUES ($1, 'bounced1@gamma.test', 'hard bounce')",
            s.company_id,
        )
        await s.api("PUT", "/api/settings/", json={"consent": {"require_confirmed_opt_in": True}})
        vips = await s.api(
            "POST",
            "/api/email-lists/",
            201,
            json={
                "list_name": "VIPs",
                "list_code": "VIP",
                "list_type": "static",
                "source_type": "manual",
            },
        )
        vip_ids = await s.db.fetch(
            "SELECT id FROM contacts WHERE email = ANY($1::text[])", excluded["suppression_list"]
        )
        await s.api(
            "POST",
            f"/api/email-lists/{vips['id']}/contacts/",
            json={"contact_ids": [r["id"] for r in vip_ids]},
        )
        await s.api("POST", "/api/blocklist/", 201, json={"entry": "Blocked@Delta.test"})
        await s.api("POST", "/api/blocklist/", 201, json={"entry": "blocked.test"})
        forget = await s.db.fetchval("SELECT id FROM contacts WHERE email = 'forget@alpha.test'")
        await s.api("POST", f"/api/contacts/{forget}/erase/")

        campaign = await s.campaign(suppression_list_id=vips["id"])
        preview = await s.api("GET", f"/api/email-campaigns/{campaign['id']}/audience/")
        assert preview["count"] == len(eligible)
        assert preview["removed"]["unsubscribed"] == 2
        assert preview["removed"]["suppressed"] == 1
        assert preview["removed"]["no_consent"] == 2
        assert preview["removed"]["suppression_list"] == 2
        assert preview["removed"]["blocklisted"] == 2
        assert len(preview["sample"]) == 10

        sent = await s.api("POST", f"/api/email-campaigns/{campaign['id']}/send/", json={})
        assert sent["campaign_status"] == "sending"
        done = await s.wait_status(campaign["id"], "sent", timeout=90)

        rows = await s.db.fetchval(
            "SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message_id"
            " WHERE m.campaign_id = $1",
            campaign["id"],
        )
        assert done["total_recipients"] == rows == len(eligible)

    received = mx_a.messages + mx_b.messages
    by_address = Counter(rcpt.lower() for m in received for rcpt in m.rcpt_tos)
    assert set(by_address) == set(eligible)
    assert set(by_address.values()) == {1}, "someone got the campaign twice"
    base = daemon.config.tracker.base_url
    lookup = dns_txt(dns_server.port)
    checked = 0
    async with httpx.AsyncClient() as web:
        for message in received:
            address = message.rcpt_tos[0]
            name = address.split("@")[0]
            msg = email.message_from_bytes(message.data, policy=email.policy.default)
            assert msg["Subject"] == f"Hi {name.capitalize()}, spring is here"
            assert msg["From"].addresses[0].display_name == "Acme News"
            html_part = msg.get_body(("html",)).get_content()
            text_part = msg.get_body(("plain",)).get_content()
            assert f"Hello {name.capitalize()} from City of {name}" in html_part
            assert "color: #336699" in html_part  # css_styles inlined
            assert f"Ten percent off for {name.capitalize()}" in html_part  # hidden preheader
            assert "display:none" in html_part
            assert f"Hello {name.capitalize()}." in text_part
            unsubscribe = re.match(r"<([^>]+)>", msg["List-Unsubscribe"]).group(1)
            assert unsubscribe.startswith(f"{base}/u/")
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert unsubscribe in text_part
            links = re.findall(r'href="([^"]+)"', html_part)
            assert len([u for u in links if u.startswith(f"{base}/c/")]) == 2
            if checked < 12:  # signatures and redirects of a dozen of them
                data = message.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                assert await asyncio.to_thread(dkim.verify, data, dnsfunc=lookup), address
                signed = msg["DKIM-Signature"].lower().replace(" ", "").replace("\r\n", "")
                assert "list-unsubscribe" in signed
                click = next(u for u in links if u.startswith(f"{base}/c/"))
                r = await web.get(click.replace("&amp;", "&"), follow_redirects=False)
                assert r.status_code == 302
                assert r.headers["location"].startswith("https://shop.example.com/sale?who=gold")
                checked += 1
