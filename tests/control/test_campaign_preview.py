"""Preview and test send of a campaign (issue 10, point 7): rendered for a chosen contact of
the caller's company, the test marked [Test], delivered through the queue to a test MX, and
never counted in the campaign's analytics."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time

import httpx

from control.cli import create_user
from tests.support.campaigns import CHEAP_CONTROL, add_contacts, campaign_setup
from tests.support.fixtures_control import CHEAP_HASHER, PASSWORD


async def test_preview_and_test_send_render_for_a_contact_and_count_nothing(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("qa.test", [(10, "mx.qa.test")])
    dns_server.add_a("mx.qa.test", "127.0.0.2")
    daemon = await daemon_factory(control=CHEAP_CONTROL)
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.control.listen}") as client:
        s = await campaign_setup(daemon, client)
        [ann] = await add_contacts(s.db, s.company_id, s.list_id, ["ann@people.test"])
        campaign = await s.campaign()
        cid = campaign["id"]

        p = await s.api("GET", f"/api/email-campaigns/{cid}/preview/", params={"contact_id": ann})
        assert p["subject"] == "Hi Ann, spring is here"
        assert "Hello Ann from City of ann" in p["html"]
        assert "Ten percent off for Ann" in p["html"]  # the preheader
        assert p["text"].startswith("Hello Ann.")
        assert p["missing_variables"] == 0
        blank = await s.api("GET", f"/api/email-campaigns/{cid}/preview/")
        assert blank["subject"] == "Hi there, spring is here" and blank["missing_variables"] > 0

        # Another company's contact is not found; a read-only role may not preview.
        other = await s.db.fetchval("INSERT INTO companies (name) VALUES ('other') RETURNING id")
        stranger = await s.db.fetchval(
            "INSERT INTO contacts (company_id, email) VALUES ($1, 'x@other.test') RETURNING id",
            other,
        )
        r = await client.get(
            f"/api/email-campaigns/{cid}/preview/",
            params={"contact_id": stranger},
            headers=s.headers,
        )
        assert r.status_code == 404
        await create_user(
            s.db, "acme", "analyst@acme.example", "analyst", PASSWORD, hasher=CHEAP_HASHER
        )
        login = await client.post(
            "/api/auth/login", json={"email": "analyst@acme.example", "password": PASSWORD}
        )
        analyst = {"Authorization": f"Bearer {login.json()['access_token']}"}
        r = await client.get(f"/api/email-campaigns/{cid}/preview/", headers=analyst)
        assert r.status_code == 403

        r = await client.post(
            f"/api/email-campaigns/{cid}/test-send/",
            headers=s.headers,
            json={"addresses": [f"qa{i}@qa.test" for i in range(11)]},
        )
        assert r.status_code == 422
        sent = await s.api(
            "POST",
            f"/api/email-campaigns/{cid}/test-send/",
            json={"addresses": ["qa1@qa.test", "QA2@qa.test"], "contact_id": ann},
        )
        assert len(sent["queued"]) == 2
        deadline = time.monotonic() + 20
        while len(mx.messages) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for message in mx.messages:
            msg = email.message_from_bytes(message.data, policy=email.policy.default)
            assert msg["Subject"] == "[Test] Hi Ann, spring is here"
            assert "Hello Ann" in msg.get_body(("html",)).get_content()
            assert "DKIM-Signature" in msg
        assert sorted(r for m in mx.messages for r in m.rcpt_tos) == ["qa1@qa.test", "qa2@qa.test"]
        counted = await s.db.fetchval("SELECT count(*) FROM messages WHERE campaign_id = $1", cid)
        assert counted == 0
        analytics = await s.api("GET", f"/api/email-campaigns/{cid}/analytics/")
        assert analytics["recipients"] == 0 and analytics["delivered"] == 0
        assert (await s.api("GET", f"/api/email-campaigns/{cid}/"))["campaign_status"] == "draft"
