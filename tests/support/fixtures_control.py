"""Fixtures for the control API: the real app under uvicorn on a free port, a real httpx
client, a fresh PostgreSQL database, and helpers that create companies and log users in
through the API itself."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from control.app import create_app
from control.auth import password_hasher
from control.cli import create_company, create_user
from mta.config import build_config

PASSWORD = "correct horse battery staple"
# argon2id at its cheapest in tests: the same code path, without 200 ms per login on 2 cores.
CHEAP_HASHING = {"password_time_cost": 1, "password_memory_kib": 1024}
CHEAP_HASHER = password_hasher(1, 1024)
SECRET = b"control-test-secret"
_serial = itertools.count(1)


@dataclass
class User:
    id: int
    email: str
    role: str
    company: Company
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


@dataclass
class Company:
    id: int
    name: str
    domain: str


@dataclass
class Control:
    """A running control API and helpers to populate it."""

    url: str
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    app: Starlette

    async def company(self, name: str | None = None) -> Company:
        name = name or f"company{next(_serial)}"
        company_id = await create_company(self.pool, name)
        domain = f"{name}.example"
        await self.pool.execute(
            "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)", company_id, domain
        )
        return Company(company_id, name, domain)

    async def user(self, company: Company, role: str = "admin", login: bool = True) -> User:
        email = f"{role}{next(_serial)}@{company.domain}"
        user_id = await create_user(
            self.pool, company.name, email, role, PASSWORD, hasher=CHEAP_HASHER
        )
        user = User(user_id, email, role, company)
        if login:
            user.tokens = await self.login(email)
        return user

    async def login(self, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/api/auth/login", json={"email": email, "password": password, **extra}
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def fixtures(self, user: User) -> dict[str, int]:
        """A template, a list with one contact, a sender profile and a campaign for `user`'s
        company, created over the API; returns their ids."""
        c = self.client
        h = user.auth
        n = next(_serial)
        t = await c.post("/api/email-templates/", headers=h, json=template_body(f"T{n}"))
        assert t.status_code == 201, t.text
        lst = await c.post("/api/email-lists/", headers=h, json=list_body(f"L{n}"))
        assert lst.status_code == 201, lst.text
        s = await c.post(
            "/api/sender-profiles/",
            headers=h,
            json={"profile_name": "News", "from_address": f"news@{user.company.domain}"},
        )
        assert s.status_code == 201, s.text
        ct = await c.post(
            "/api/contacts/", headers=h, json={"email": f"jane{n}@example.net", "first_name": "J"}
        )
        assert ct.status_code == 201, ct.text
        m = await c.post(
            f"/api/email-lists/{lst.json()['id']}/contacts/",
            headers=h,
            json={"contact_ids": [ct.json()["id"]]},
        )
        assert m.status_code == 200, m.text
        body = campaign_body(t.json()["id"], lst.json()["id"], s.json()["id"])
        cp = await c.post("/api/email-campaigns/", headers=h, json=body)
        assert cp.status_code == 201, cp.text
        w = await c.post(
            "/api/email-workflows/", headers=h, json=workflow_body(f"W{n}", cp.json()["id"])
        )
        assert w.status_code == 201, w.text
        return {
            "template": t.json()["id"],
            "list": lst.json()["id"],
            "sender": s.json()["id"],
            "contact": ct.json()["id"],
            "campaign": cp.json()["id"],
            "workflow": w.json()["id"],
        }


HTML = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
    "<style>@media (max-width:600px){.c{width:100%}}</style></head>"
    '<body><div class="c"><p>Hello {{first_name}}</p>'
    '<a href="{{unsubscribe_url}}">Unsubscribe</a></div></body></html>'
)


def template_body(code: str, **over: Any) -> dict[str, Any]:
    return {
        "template_name": f"Template {code}",
        "template_code": code,
        "template_type": "newsletter",
        "category": "marketing",
        "html_content": HTML,
        **over,
    }


def list_body(code: str, **over: Any) -> dict[str, Any]:
    return {
        "list_name": f"List {code}",
        "list_code": code,
        "list_type": "static",
        "source_type": "manual",
        **over,
    }


def campaign_body(template: int, lst: int, sender: int | None = None, **over: Any) -> dict:
    body = {
        "campaign_name": "Spring sale",
        "subject_line": "Spring is here",
        "campaign_type": "promotional",
        "email_template_id": template,
        "target_list_id": lst,
        **over,
    }
    if sender is not None:
        body["sender_profile_id"] = sender
    return body


def workflow_body(code: str, campaign: int | None = None, **over: Any) -> dict[str, Any]:
    steps = [{"type": "wait", "days": 1}]
    if campaign is not None:
        steps.append({"type": "send_campaign", "campaign_id": campaign})
    return {
        "workflow_name": f"Workflow {code}",
        "workflow_code": code,
        "workflow_type": "welcome",
        "trigger_timing": "immediate",
        "workflow_steps": steps,
        **over,
    }


MakeControl = Callable[..., Awaitable[Control]]


@pytest.fixture
async def make_control(pool: asyncpg.Pool) -> AsyncIterator[MakeControl]:
    """Starts the control API with `[control]` overrides; several may run at once."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient, Starlette]] = []

    async def start(*, config: dict[str, Any] | None = None, **control: Any) -> Control:
        """`config`: other sections of the server's config (e.g. dns, domains)."""
        settings = {"listen": "127.0.0.1:0", **CHEAP_HASHING, **control}
        config = build_config({"secret": "test", **(config or {}), "control": settings})
        app = create_app(pool, config, SECRET)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
        )
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, timeout=10)
        running.append((server, task, client, app))
        return Control(url, client, pool, app)

    yield start
    for server, _, client, app in running:
        await client.aclose()
        await app.state.services.hub.stop()
        await app.state.services.auth.principals.stop()
        await app.state.services.auth.key_usage.drain()
        server.should_exit = True
    await asyncio.gather(*(task for _, task, _, _ in running))


@pytest.fixture
async def control(make_control: MakeControl) -> Control:
    return await make_control()
