"""The preference page over the tracker's own listener with a real HTTP client: the tenant's
lists by name with checkboxes, and saving changes what the control API and the mail path see
(memberships and unsubscriptions)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mta import unsubscriptions
from mta.config import build_config
from tests.support.fixtures_control import Control, User, list_body
from tests.support.fixtures_daemon import free_port
from tracker.server import TrackerServer, build_codec
from tracker.tokens import Token, TokenKind

ADDRESS = "frank@dest.test"


@pytest.fixture
async def tracker(control: Control, tmp_path: Path) -> AsyncIterator[TrackerServer]:
    port = free_port()
    config = build_config(
        {
            "secret": "preferences-test",
            "state_dir": str(tmp_path),
            "tracker": {"listen": f"127.0.0.1:{port}", "base_url": f"http://127.0.0.1:{port}"},
        }
    )
    server = TrackerServer(config, control.pool)
    await server.start()
    yield server
    await server.stop(2)


async def _list(control: Control, admin: User, code: str, name: str, **over: object) -> int:
    body = list_body(code, list_name=name, **over)
    r = await control.client.post("/api/email-lists/", headers=admin.auth, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _recipient_row(control: Control, company_id: int, list_id: int) -> int:
    """The queue's row for mail that reached Frank from `list_id` (what tokens point at)."""
    message = await control.pool.fetchval(
        "INSERT INTO messages (company_id, mail_from, from_domain, body, size, category, list_id)"
        " VALUES ($1, 'news@acme.test', 'acme.test', 'x', 1, 'marketing', $2) RETURNING id",
        company_id,
        list_id,
    )
    return await control.pool.fetchval(
        "INSERT INTO recipients (message_id, company_id, recipient, domain, expires_at, state)"
        " VALUES ($1, $2, 'Frank@Dest.test', 'dest.test', now() + interval '1 day', 'delivered')"
        " RETURNING id",
        message,
        company_id,
    )


def _boxes(page: str) -> dict[str, bool]:
    """The page's checkboxes: list name -> ticked."""
    found = re.findall(
        r'<input type="checkbox" name="list" value="\d+"( checked)?> <span>([^<]+)</span>', page
    )
    return {name: bool(checked) for checked, name in found}


async def _membership(control: Control, admin: User, list_id: int) -> str | None:
    r = await control.client.get(f"/api/email-lists/{list_id}/contacts/", headers=admin.auth)
    assert r.status_code == 200, r.text
    states = [m["membership_state"] for m in r.json()["results"] if m["email"] == ADDRESS]
    return states[0] if states else None


async def test_the_preference_page_names_the_lists_and_saving_changes_membership(
    control: Control, tracker: TrackerServer
) -> None:
    company = await control.company("acme")
    admin = await control.user(company, "admin")
    weekly = await _list(control, admin, "WEEK", "Weekly news", description="Every Monday")
    updates = await _list(control, admin, "UPD", "Product updates")
    offers = await _list(control, admin, "OFF", "Offers & deals", is_public=True)
    await _list(control, admin, "STAFF", "Staff only")  # not Frank's, not public: not offered
    contact = await control.client.post(
        "/api/contacts/", headers=admin.auth, json={"email": ADDRESS, "first_name": "Frank"}
    )
    for list_id in (weekly, updates):
        r = await control.client.post(
            f"/api/email-lists/{list_id}/contacts/",
            headers=admin.auth,
            json={"contact_ids": [contact.json()["id"]]},
        )
        assert r.status_code == 200, r.text
    recipient = await _recipient_row(control, company.id, weekly)
    codec = build_codec(tracker.config)
    token = codec.make(
        Token(TokenKind.UNSUBSCRIBE, recipient, company.id, 0, weekly, int(time.time()))
    )
    url = f"{tracker.config.tracker.base_url}/p/{token}"

    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert _boxes(page.text) == {
            "Offers &amp; deals": False,
            "Product updates": True,
            "Weekly news": True,
        }
        assert "Every Monday" in page.text and "Staff only" not in page.text
        assert "<script" not in page.text and '<label class="choice">' in page.text

        # keep the updates, leave the weekly news, join the offers
        saved = await client.post(url, data={"action": "save", "list": [str(updates), str(offers)]})
        assert saved.status_code == 200 and "Your preferences are saved" in saved.text
        assert _boxes(saved.text) == {
            "Offers &amp; deals": True,
            "Product updates": True,
            "Weekly news": False,
        }
        assert _boxes((await client.get(url)).text) == _boxes(saved.text)
        # a third-party page posting the forwarded link is refused, and changes nothing
        # (issue 12.14)
        for headers in (
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
        ):
            forged = await client.post(url, data={"action": "leave-all"}, headers=headers)
            assert forged.status_code == 403, headers
        same = {"Origin": url.rsplit("/p/", 1)[0], "Sec-Fetch-Site": "same-origin"}
        assert (
            await client.post(
                url, data={"action": "save", "list": [str(updates), str(offers)]}, headers=same
            )
        ).status_code == 200
        assert _boxes((await client.get(url)).text) == _boxes(saved.text)
        # what the control API shows, and what the mail path will do
        assert await _membership(control, admin, weekly) == "unsubscribed"
        assert await _membership(control, admin, offers) == "subscribed"
        assert await _membership(control, admin, updates) == "subscribed"
        db = control.pool
        assert await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS, weekly)
        assert not await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS, updates)
        [left] = await unsubscriptions.unsubscribed_lists(db, company.id, ADDRESS)
        assert (left.list_id, left.source) == (weekly, "page")

        # leave everything, then come back for the product updates only
        page = await client.post(url, data={"action": "leave-all"})
        assert "unsubscribed from all our lists" in page.text
        assert set(_boxes(page.text).values()) == {False}
        assert await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS)
        page = await client.post(url, data={"action": "save", "list": str(updates)})
        assert _boxes(page.text) == {
            "Offers &amp; deals": False,
            "Product updates": True,
            "Weekly news": False,
        }
        assert not await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS, updates)
        assert await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS, offers)
        assert await unsubscriptions.is_unsubscribed(db, company.id, ADDRESS, weekly)

        # a list id of another company, slipped into the form, changes nothing
        other = await control.company()
        other_admin = await control.user(other, "admin")
        foreign = await _list(control, other_admin, "X", "Theirs")
        page = await client.post(url, data={"action": "save", "list": [str(updates), str(foreign)]})
        assert "Theirs" not in page.text
        assert (
            await control.pool.fetchval(
                "SELECT count(*) FROM list_members WHERE list_id = $1", foreign
            )
            == 0
        )

    # each list left through the page is an unsubscribe event of the campaign's mail
    while tracker.writer.depth:
        await tracker.writer.flush()
    kinds = await control.pool.fetch("SELECT kind::text, list_id FROM tracking_events ORDER BY id")
    assert [(k["kind"], k["list_id"]) for k in kinds] == [
        ("unsubscribe", weekly),
        ("unsubscribe", None),
        ("unsubscribe", offers),
    ]


async def test_mail_from_a_list_unknown_to_the_control_api_is_still_offered(
    control: Control, tracker: TrackerServer
) -> None:
    company = await control.company("acme")
    recipient = await _recipient_row(control, company.id, 4242)
    token = build_codec(tracker.config).make(
        Token(TokenKind.UNSUBSCRIBE, recipient, company.id, 0, 4242, int(time.time()))
    )
    url = f"{tracker.config.tracker.base_url}/p/{token}"
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert _boxes(page.text) == {"The list this message was sent to": True}
        page = await client.post(url, data={"action": "save"})
        assert _boxes(page.text) == {"The list this message was sent to": False}
        assert await unsubscriptions.is_unsubscribed(control.pool, company.id, ADDRESS, 4242)
        page = await client.post(url, data={"action": "save", "list": "4242"})
        assert _boxes(page.text) == {"The list this message was sent to": True}
        assert not await unsubscriptions.is_unsubscribed(control.pool, company.id, ADDRESS)
