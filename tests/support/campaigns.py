"""Campaigns through the running daemon: a company user logged in to its control API, contacts
written in bulk, the template / list / sender profile / campaign created over the API, and
waiting for a campaign to reach a status."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from control.cli import create_company, create_user
from mta.daemon import Daemon
from tests.support.fixtures_control import CHEAP_HASHER, PASSWORD, list_body, template_body
from tests.support.fixtures_daemon import TEST_DOMAIN

CHEAP_CONTROL = {"password_time_cost": 1, "password_memory_kib": 1024}

HTML = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
    "<style>@media (max-width:600px){.c{width:100%}}</style></head>"
    '<body><div class="c"><p class="greet">Hello {{ contact.first_name }} from '
    "{{ contact.attributes.city | default('nowhere') }}</p>"
    '<p><a href="https://shop.example.com/sale?who={{ contact.attributes.tier }}">Sale</a> '
    '<a href="https://shop.example.com/blog">Blog</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> '
    '<a href="{{ view_url }}">View online</a></p></div></body></html>'
)
TEXT = "Hello {{ contact.first_name }}.\nUnsubscribe: {{ unsubscribe_url }}\n"
CSS = ".greet{color:#336699}"


@dataclass
class CampaignSetup:
    daemon: Daemon
    client: httpx.AsyncClient
    headers: dict[str, str]
    company_id: int
    list_id: int
    template_id: int
    sender_id: int

    @property
    def db(self) -> asyncpg.Pool:
        assert self.daemon.db is not None
        return self.daemon.db

    async def api(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = await self.client.request(method, path, headers=self.headers, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def campaign(self, **over: Any) -> dict[str, Any]:
        body = {
            "campaign_name": "Spring sale",
            "subject_line": "Hi {{ contact.first_name | default('there') }}, spring is here",
            "preheader_text": "Ten percent off for {{ contact.first_name }}",
            "campaign_type": "promotional",
            "email_template_id": self.template_id,
            "target_list_id": self.list_id,
            "sender_profile_id": self.sender_id,
            **over,
        }
        return await self.api("POST", "/api/email-campaigns/", 201, json=body)

    async def wait_status(self, campaign_id: int, status: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            row = await self.api("GET", f"/api/email-campaigns/{campaign_id}/")
            if row["campaign_status"] == status:
                return row
            assert time.monotonic() < deadline, f"campaign still {row['campaign_status']}"
            await asyncio.sleep(0.2)


async def campaign_setup(daemon: Daemon, client: httpx.AsyncClient) -> CampaignSetup:
    """Company acme (it owns the daemon's sending domain), an admin logged in, a template,
    a list and a sender profile on it."""
    assert daemon.db is not None
    company_id = await create_company(daemon.db, "acme")
    email = f"admin{time.time_ns()}@acme.example"
    await create_user(daemon.db, "acme", email, "admin", PASSWORD, hasher=CHEAP_HASHER)
    r = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    setup = CampaignSetup(
        daemon, client, {"Authorization": f"Bearer {r.json()['access_token']}"}, company_id, 0, 0, 0
    )
    code = f"T{time.time_ns() % 10**8}"
    template = await setup.api(
        "POST",
        "/api/email-templates/",
        201,
        json=template_body(code, html_content=HTML, text_content=TEXT, css_styles=CSS),
    )
    lst = await setup.api("POST", "/api/email-lists/", 201, json=list_body(f"L{code}"))
    sender = await setup.api(
        "POST",
        "/api/sender-profiles/",
        201,
        json={
            "profile_name": "News",
            "from_name": "Acme News",
            "from_address": f"news@{TEST_DOMAIN}",
        },
    )
    setup.template_id, setup.list_id, setup.sender_id = template["id"], lst["id"], sender["id"]
    return setup


async def add_contacts(
    db: asyncpg.Pool,
    company_id: int,
    list_id: int,
    addresses: list[str],
    *,
    opt_in: str = "confirmed",
) -> list[int]:
    """Contacts for `addresses` (first name and city from the address), members of the list;
    written in two statements, as a bulk import would."""
    ids = await db.fetch(
        """
        INSERT INTO contacts (company_id, email, first_name, attributes, opt_in_state)
        SELECT $1, a, initcap(split_part(a, '@', 1)),
               jsonb_build_object('city', 'City of ' || split_part(a, '@', 1), 'tier', 'gold'),
               $3::opt_in_state
        FROM unnest($2::text[]) WITH ORDINALITY AS t(a, n) ORDER BY n
        RETURNING id
        """,
        company_id,
        addresses,
        opt_in,
    )
    contact_ids = [r["id"] for r in ids]
    await db.execute(
        "INSERT INTO list_members (company_id, list_id, contact_id)"
        " SELECT $1, $2, unnest($3::bigint[])",
        company_id,
        list_id,
        contact_ids,
    )
    return contact_ids
