"""The control API as a platform: the append-only audit log, rate limits, the OpenAPI
document and docs page, WebSocket events, and the daemon serving it on its own listener."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from control.events import publish
from tests.support.fixtures_control import Control, MakeControl, campaign_body, list_body


async def test_writes_are_audited_with_before_and_after(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)
    c, h = control.client, admin.auth
    lst = (await c.post("/api/email-lists/", headers=h, json=list_body("AUD"))).json()
    await c.put(f"/api/email-lists/{lst['id']}/", headers=h, json={"list_name": "Renamed"})
    await c.delete(f"/api/email-lists/{lst['id']}/", headers=h)
    log = (await c.get("/api/audit-log/?resource=email_list", headers=h)).json()
    actions = [e["action"] for e in log["results"]]
    assert actions == ["email_list.delete", "email_list.update", "email_list.create"]
    update = log["results"][1]
    assert update["before"]["list_name"] == "List AUD"
    assert update["after"]["list_name"] == "Renamed"
    assert update["user_id"] == admin.id and update["ip"] == "127.0.0.1"
    assert update["resource_id"] == str(lst["id"]) and len(update["request_id"]) == 32
    # A refused write leaves no trace but its refusal; a read leaves none.
    await c.post("/api/email-lists/", headers=h, json={"list_name": ""})
    await c.get("/api/email-lists/", headers=h)
    again = (await c.get("/api/audit-log/?resource=email_list", headers=h)).json()
    assert again["total"] == 3
    # Logins are audited; other companies' rows are not visible.
    other = await control.user(await control.company())
    theirs = (await c.get("/api/audit-log/", headers=other.auth)).json()
    assert {e["action"] for e in theirs["results"]} == {"user.login"}


async def test_audit_rows_cannot_be_altered_with_sql(control: Control) -> None:
    company = await control.company()
    await control.user(company)  # the login writes an audit row
    pool = control.pool
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1
    for statement in (
        "UPDATE audit_log SET action = 'nothing happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT action FROM audit_log") == "user.login"


async def test_rate_limit_per_user_answers_429_with_retry_after(make_control: MakeControl) -> None:
    control = await make_control(rate_limit="60/m", rate_burst=5)
    company = await control.company()
    one = await control.user(company)
    two = await control.user(company, "analyst")
    statuses = [
        (await control.client.get("/api/email-campaigns/", headers=one.auth)).status_code
        for _ in range(7)
    ]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    r = await control.client.get("/api/email-campaigns/", headers=one.auth)
    assert r.json()["error_code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 2
    # Another user has a budget of their own.
    assert (await control.client.get("/api/email-campaigns/", headers=two.auth)).status_code == 200


async def test_openapi_document_covers_every_route(control: Control) -> None:
    doc = (await control.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/api/email-campaigns/",
        "/api/email-campaigns/{id}/",
        "/api/email-campaigns/{id}/send/",
        "/api/email-templates/",
        "/api/email-workflows/",
        "/api/email-lists/",
        "/api/auth/login",
    ):
        assert path in paths, path
    listing = paths["/api/email-campaigns/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"page", "page_size", "campaign_status", "campaign_type"} <= names
    assert listing["x-permission"] == "campaigns:read"
    create = paths["/api/email-campaigns/"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"campaign_name", "subject_line", "email_template_id", "target_list_id"} <= set(
        schema["required"]
    )
    assert schema["properties"]["campaign_code"]["pattern"] == "^[A-Za-z0-9-]+$"
    ops = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(ops) == len(set(ops)), "operationIds must be unique"
    page = await control.client.get("/api/docs")
    assert page.status_code == 200 and "/api/openapi.json" in page.text


async def _ws(control: Control, token: str | None) -> Any:
    url = control.url.replace("http://", "ws://") + "/api/ws"
    if token:
        url += f"?access_token={token}"
    return await websockets.connect(url, open_timeout=5)


async def _next_event(ws: Any, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_websocket_events_reach_only_the_companys_users(control: Control) -> None:
    acme = await control.company()
    admin = await control.user(acme)
    exec_ = await control.user(acme, "executive")
    stranger = await control.user(await control.company())
    ids = await control.fixtures(admin)
    with pytest.raises(websockets.InvalidStatus):
        await _ws(control, None)
    with pytest.raises(websockets.InvalidStatus):
        await _ws(control, "not-a-token")
    ours = await _ws(control, exec_.tokens["access_token"])
    theirs = await _ws(control, stranger.tokens["access_token"])
    try:
        assert (await _next_event(ours))["event"] == "ready"
        assert (await _next_event(theirs))["event"] == "ready"
        body = campaign_body(ids["template"], ids["list"], ids["sender"])
        created = (
            await control.client.post("/api/email-campaigns/", headers=admin.auth, json=body)
        ).json()
        event = await _next_event(ours)
        assert event["event"] == "email_campaign.created"
        assert event["data"]["id"] == created["id"] and event["data"]["recipient_count"] == 1
        r = await control.client.post(
            f"/api/email-campaigns/{created['id']}/send/", headers=admin.auth, json={}
        )
        assert r.status_code == 200
        sent = await _next_event(ours)
        assert (
            sent["event"] == "email_campaign.sent" and sent["data"]["campaign_status"] == "sending"
        )
        # The campaign engine publishes performance updates the same way.
        await publish(
            control.pool,
            acme.id,
            "email_campaign.performance_update",
            {"id": created["id"], "opened_count": 3},
        )
        perf = await _next_event(ours)
        assert perf["event"] == "email_campaign.performance_update"
        assert perf["data"]["opened_count"] == 3
        # Nothing of acme's reached the other company.
        with pytest.raises(TimeoutError):
            await _next_event(theirs, timeout=0.5)
    finally:
        await ours.close()
        await theirs.close()


async def test_daemon_serves_the_control_api_on_its_own_listener(
    tmp_path, database_url: str
) -> None:
    from mta.config import build_config
    from mta.daemon import Daemon
    from tests.support.fixtures_daemon import free_port

    port = free_port()
    config = build_config(
        {
            "hostname": "sendmill.test",
            "state_dir": str(tmp_path / "state"),
            "secret": "test-secret",
            "database": {"url": database_url},
            "smtp": {"listen": f"127.0.0.1:{free_port()}", "listen_tls": None},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "bounce": {"listen": None},
            "log": {"level": "warning", "format": "text"},
            "control": {"listen": f"127.0.0.1:{port}"},
        }
    )
    daemon = Daemon(config)
    await daemon.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    r = await client.get("/api/openapi.json")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert r.status_code == 200
            r = await client.get("/api/email-campaigns/")
            assert r.status_code == 401 and r.json()["error_code"] == "unauthorized"
            # The web console, on the same listener (503 saying how to build it, if unbuilt).
            r = await client.get("/ui/")
            assert r.status_code in (200, 503) and "content-security-policy" in r.headers
    finally:
        await daemon.stop(grace=5)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/api/openapi.json")


async def test_websocket_closes_when_the_session_ends(
    control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    from control import websocket

    monkeypatch.setattr(websocket, "RECHECK_SECONDS", 0.2)
    user = await control.user(await control.company())
    ws = await _ws(control, user.tokens["access_token"])
    try:
        assert (await _next_event(ws))["event"] == "ready"
        assert (await control.client.post("/api/auth/logout", headers=user.auth)).status_code == 204
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == websocket.CLOSE_UNAUTHORIZED
    finally:
        await ws.close()


async def test_websocket_takes_the_token_in_a_first_message_instead_of_the_url(
    control: Control,
) -> None:
    """The console keeps its token out of URLs (issue 17): it opens the socket with the
    `sendmill.auth-message` subprotocol and sends the token as its first message."""
    acme = await control.company()
    user = await control.user(acme, "analyst")
    url = control.url.replace("http://", "ws://") + "/api/ws"
    async with websockets.connect(
        url, subprotocols=["sendmill.auth-message"], open_timeout=5
    ) as ws:
        auth = {"type": "auth", "access_token": user.tokens["access_token"]}
        await ws.send(json.dumps(auth))
        assert (await _next_event(ws))["event"] == "ready"
    async with websockets.connect(
        url, subprotocols=["sendmill.auth-message"], open_timeout=5
    ) as ws:
        await ws.send(json.dumps({"type": "auth", "access_token": "not-a-token"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _next_event(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
