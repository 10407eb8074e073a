"""Security of the submission surfaces (SMTP and HTTP, raw and JSON), as an auditor reads them:
one tenant never sends as another's domain however the From and Sender fields are written
(issue 12, High 1), and nothing a client writes reaches a header we compose raw (issue 11.5,
issue 12.12). Real listeners on loopback, a real PostgreSQL, real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx
import pytest
import uvicorn

from mta import credentials, tenants
from mta.config import build_config
from mta.credentials import CredentialStore
from mta.http_api import create_app
from mta.smtp_server import SmtpListeners
from mta.submission import SubmissionPolicy
from mta.verp import Verp

OWN = "a.test"  # acme's sending domain
OTHER = "b.test"  # bravo's: acme must never send as it


@dataclass
class Surfaces:
    """Acme's SMTP login and API key, the listeners, and the database behind them."""

    db: asyncpg.Pool
    smtp_address: tuple[str, int]
    smtp_login: tuple[str, str]
    http: httpx.AsyncClient
    api_key: str

    async def smtp_send(self, message: bytes, mail_from: str = f"news@{OWN}") -> tuple[int, str]:
        host, port = self.smtp_address
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False)
        await client.connect()
        try:
            await client.login(*self.smtp_login)
            await client.mail(mail_from)
            await client.rcpt("x@dest.test")
            try:
                reply = await client.data(message)
            except aiosmtplib.SMTPDataError as refused:
                return refused.code, refused.message
            return reply.code, reply.message
        finally:
            await client.quit()

    async def http_raw(self, message: bytes) -> httpx.Response:
        return await self.http.post(
            "/api/v1/messages?to=x@dest.test",
            content=message,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "message/rfc822"},
        )

    async def http_json(self, spec: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            "/api/v1/messages", json=spec, headers={"Authorization": f"Bearer {self.api_key}"}
        )

    async def queued(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM recipients")


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
async def surfaces(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Surfaces]:
    acme = await tenants.ensure_company(pool, "acme")
    bravo = await tenants.ensure_company(pool, "bravo")
    for company, domain in ((acme, OWN), (bravo, OTHER)):
        await pool.execute(
            "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)", company, domain
        )
    login = await credentials.create_smtp_login(pool, acme, "acme-app")
    key = await credentials.create_api_key(pool, acme, "acme-app")
    config = build_config(
        {
            "hostname": "mx.sendmill.test",
            "state_dir": str(tmp_path / "state"),
            "smtp": {"listen": "127.0.0.1:0", "plaintext_auth_on_loopback": True},
            "bounce": {"domain": "bounces.sendmill.test"},
        }
    )
    policy = SubmissionPolicy(pool, config.hostname, 100_000, max_recipients=10)
    listeners = SmtpListeners(
        config, pool, CredentialStore(pool), policy, Verp(b"s", "bounces.sendmill.test")
    )
    await listeners.start()
    app = create_app(
        db=pool,
        credentials=CredentialStore(pool),
        policy=policy,
        max_age=3600,
        max_body_size=200_000,
    )
    server, task, base_url = await _serve(app)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield Surfaces(
            pool,
            listeners.addresses["submission"],
            (login.login, login.secret),
            client,
            key.login,
        )
    server.should_exit = True
    await task
    await listeners.stop(grace=1)


def _message(header: str) -> bytes:
    return f"{header}\r\nTo: x@dest.test\r\nSubject: hi\r\n\r\nhello\r\n".encode()


# Each is a way a mail client would show bravo's domain as (one of) the author(s).
FORGED_ORIGINATORS = {
    "folded display name": f'From: "news@{OWN}"\r\n <ceo@{OTHER}>',
    "two mailboxes": f"From: news@{OWN}, ceo@{OTHER}",
    "a group": f"From: staff: news@{OWN}, ceo@{OTHER};",
    "folded group": f"From: staff: news@{OWN},\r\n\tceo@{OTHER};",
    "encoded word display name": f"From: =?utf-8?q?ceo=40{OTHER}?= <news@{OWN}>",
    "address in a comment": f"From: news@{OWN} (ceo@{OTHER})",
    "address in the display name": f'From: "ceo@{OTHER}" <news@{OWN}>',
    "Sender of another domain": f"From: news@{OWN}\r\nSender: ceo@{OTHER}",
    "folded Sender": f"From: news@{OWN}\r\nSender:\r\n <ceo@{OTHER}>",
    "two From fields": f"From: news@{OWN}\r\nFrom: ceo@{OTHER}",
    "two Sender fields": f"From: news@{OWN}\r\nSender: news@{OWN}\r\nSender: ops@{OWN}",
    "unparseable From": f"From: news@{OWN} <ceo@{OTHER}>",
    "angle brackets in a row": f'From: "x" <news@{OWN}> <ceo@{OTHER}>',
    "quoted local part with an at": f'From: "ceo@{OTHER}"@{OWN}',
    "address literal": "From: news@[127.0.0.1]",
}

HONEST_ORIGINATORS = {
    "plain": f"From: news@{OWN}",
    "display name": f'From: "Acme News" <news@{OWN}>',
    "folded display name": f'From: "Acme News"\r\n <news@{OWN}>',
    "encoded display name": f"From: =?utf-8?q?J=C3=B6rg?= <news@{OWN}>",
    "several own mailboxes with a Sender": (f"From: news@{OWN}, ops@{OWN}\r\nSender: news@{OWN}"),
    "display name naming an own address": f'From: "news@{OWN}" <news@{OWN}>',
}


@pytest.mark.parametrize("header", FORGED_ORIGINATORS.values(), ids=FORGED_ORIGINATORS.keys())
async def test_smtp_refuses_every_from_a_reader_could_take_for_another_tenant(
    surfaces: Surfaces, header: str
) -> None:
    code, text = await surfaces.smtp_send(_message(header))
    assert (code, text[:5]) == (550, "5.7.1"), text
    assert await surfaces.queued() == 0


@pytest.mark.parametrize("header", FORGED_ORIGINATORS.values(), ids=FORGED_ORIGINATORS.keys())
async def test_http_raw_refuses_every_from_a_reader_could_take_for_another_tenant(
    surfaces: Surfaces, header: str
) -> None:
    response = await surfaces.http_raw(_message(header))
    assert response.status_code == 403, response.text
    assert response.json()["error_code"] in {"sender_domain_not_allowed", "sender_ambiguous"}
    assert await surfaces.queued() == 0


@pytest.mark.parametrize("header", HONEST_ORIGINATORS.values(), ids=HONEST_ORIGINATORS.keys())
async def test_honest_originators_are_accepted_on_both_surfaces(
    surfaces: Surfaces, header: str
) -> None:
    code, text = await surfaces.smtp_send(_message(header))
    assert code == 250, text
    response = await surfaces.http_raw(_message(header))
    assert response.status_code == 202, response.text
    assert await surfaces.queued() == 2


@pytest.mark.parametrize(
    "sender",
    [
        {"email": f"news@{OWN}", "name": f"ceo@{OTHER}"},
        f'"ceo@{OTHER}" <news@{OWN}>',
    ],
)
async def test_http_json_refuses_a_from_name_showing_another_tenants_address(
    surfaces: Surfaces, sender: Any
) -> None:
    response = await surfaces.http_json(
        {"from": sender, "to": ["x@dest.test"], "subject": "hi", "text": "hello"}
    )
    assert response.status_code == 403, response.text
    assert await surfaces.queued() == 0


async def test_an_envelope_sender_of_another_tenant_is_refused_at_mail_from(
    surfaces: Surfaces,
) -> None:
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await surfaces.smtp_send(_message(f"From: news@{OWN}"), mail_from=f"ceo@{OTHER}")
    assert refused.value.code == 550
    assert await surfaces.queued() == 0


# --- control characters in composed header fields (issue 11.5, issue 12.12) -----------------

# Line breaks to some reader (VT, FF, FS, NEL, LS, PS), raw control characters, DEL, C1.
UNSAFE_CHARACTERS = ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\x01", "\x7f", "\x9b"]


def _spec_with(field: str, value: str) -> tuple[dict[str, Any], str]:
    """A JSON submission carrying `value` in `field`, and the field path the 422 must name."""
    spec: dict[str, Any] = {
        "from": {"email": f"news@{OWN}", "name": "Acme"},
        "to": ["x@dest.test"],
        "subject": "hi",
        "text": "hello",
    }
    if field == "subject":
        spec["subject"] = f"Sale{value}Bcc: victim@dest.test"
        return spec, "subject"
    if field == "from.name":
        spec["from"]["name"] = f"Acme{value}"
        return spec, "from.name"
    if field == "to":
        spec["to"] = [f"Ann{value} <x@dest.test>"]
        return spec, "to[0]"
    if field == "headers":
        spec["headers"] = {"X-Campaign": f"spring{value}"}
        return spec, "headers.X-Campaign"
    spec["attachments"] = [{"filename": f"a{value}.txt", "content": "aGk="}]
    return spec, "attachments[0].filename"


@pytest.mark.parametrize("character", UNSAFE_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", ["subject", "from.name", "to", "headers", "filename"])
async def test_control_characters_in_any_composed_header_are_422_naming_the_field(
    surfaces: Surfaces, field: str, character: str
) -> None:
    spec, path = _spec_with(field, character)
    response = await surfaces.http_json(spec)
    assert response.status_code == 422, response.text
    assert response.json()["details"]["field"] == path
    assert await surfaces.queued() == 0


@pytest.mark.parametrize("field", ["subject", "text", "html", "from.name"])
async def test_lone_surrogates_are_422_not_500(surfaces: Surfaces, field: str) -> None:
    spec: dict[str, Any] = {"from": f"news@{OWN}", "to": ["x@dest.test"], "text": "hello"}
    if field == "from.name":
        spec["from"] = {"email": f"news@{OWN}", "name": "\ud800"}
    else:
        spec[field] = "a \ud83d b"
    # httpx would refuse to encode a lone surrogate: write the JSON escape ourselves.
    body = json.dumps(spec).encode()
    response = await surfaces.http.post(
        "/api/v1/messages",
        content=body,
        headers={"Authorization": f"Bearer {surfaces.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["details"]["field"] == field
    assert await surfaces.queued() == 0


async def test_a_header_name_with_a_lone_surrogate_is_422_not_500(surfaces: Surfaces) -> None:
    spec = {
        "from": f"news@{OWN}",
        "to": ["x@dest.test"],
        "text": "hi",
        "headers": {"X-\udc80": "v"},
    }
    response = await surfaces.http.post(
        "/api/v1/messages",
        content=json.dumps(spec).encode(),
        headers={"Authorization": f"Bearer {surfaces.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


async def test_a_tab_in_a_subject_is_still_accepted(surfaces: Surfaces) -> None:
    spec = {"from": f"news@{OWN}", "to": ["x@dest.test"], "subject": "a\tb", "text": "hi"}
    response = await surfaces.http_json(spec)
    assert response.status_code == 202, response.text


# --- referenced ids (issue 12.13) -----------------------------------------------------------


async def test_the_daemon_refuses_another_companys_campaign_or_list_id(
    daemon_factory: Any, pool: asyncpg.Pool
) -> None:
    daemon = await daemon_factory()
    acme = await tenants.ensure_company(pool, "acme")  # the daemon's example.test owner
    bravo = await tenants.ensure_company(pool, "bravo")
    ids = {}
    for company in (acme, bravo):
        ids[company] = await pool.fetchval(
            "INSERT INTO email_lists (company_id, list_name, list_code, list_type, source_type)"
            " VALUES ($1, 'L', 'L', 'static', 'manual') RETURNING id",
            company,
        )
    key = await credentials.create_api_key(pool, acme, "app")
    headers = {"Authorization": f"Bearer {key.login}"}
    spec = {
        "from": "app@example.test",
        "to": ["x@dest.test"],
        "text": "hi",
        "category": "marketing",
    }
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        for option, value in (("list_id", ids[bravo]), ("campaign_id", 987654)):
            r = await client.post("/api/v1/messages", json={**spec, option: value}, headers=headers)
            assert r.status_code == 422, r.text
            assert r.json()["details"]["field"] == option
            raw = b"From: app@example.test\r\nTo: x@dest.test\r\n\r\nhi\r\n"
            r = await client.post(
                f"/api/v1/messages?{option}={value}",
                content=raw,
                headers={**headers, "Content-Type": "message/rfc822"},
            )
            assert r.status_code == 422, r.text
        assert await pool.fetchval("SELECT count(*) FROM recipients") == 0
        r = await client.post(
            "/api/v1/messages", json={**spec, "list_id": ids[acme]}, headers=headers
        )
        assert r.status_code == 202, r.text


# --- /metrics exposure (issue 12.8) ---------------------------------------------------------


async def test_metrics_answer_only_loopback_or_the_token(pool: asyncpg.Pool) -> None:
    def app(token: str | None) -> Any:
        return create_app(
            db=pool,
            credentials=CredentialStore(pool),
            policy=SubmissionPolicy(pool, "h.test", 1000, max_recipients=1),
            max_age=60,
            max_body_size=1000,
            metrics_token=token,
        )

    # A client as the Internet would be: ASGI sees its address, not ours.
    async def get(token: str | None, client: str, headers: dict[str, str]) -> int:
        transport = httpx.ASGITransport(app=app(token), client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://h.test") as c:
            return (await c.get("/metrics", headers=headers)).status_code

    assert await get(None, "127.0.0.1", {}) == 200
    assert await get(None, "::1", {}) == 200
    assert await get(None, "203.0.113.9", {}) == 404
    assert await get("s3cret", "127.0.0.1", {}) == 404  # behind a proxy: the token decides
    assert await get("s3cret", "203.0.113.9", {"Authorization": "Bearer s3cret"}) == 200
    assert await get("s3cret", "203.0.113.9", {"Authorization": "Bearer wrong"}) == 404
