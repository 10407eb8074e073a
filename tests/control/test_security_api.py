"""Security of the control API, as an auditor reads it: header material is refused at save
(issue 10.8, 12.12), a sender profile cannot show another tenant's domain (issue 12, High 1).
The real app under uvicorn, a real client, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pyotp
import pytest
import websockets

from mta.logs import setup_logging
from tests.support.fixtures_control import (
    PASSWORD,
    Control,
    User,
    campaign_body,
    workflow_body,
)

UNSAFE = ["\r\nBcc: x@evil.test", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\x01", "\x7f"]


async def _admin(control: Control) -> User:
    return await control.user(await control.company())


@pytest.mark.parametrize("character", UNSAFE, ids=lambda c: repr(c))
async def test_header_material_with_control_characters_is_refused_at_save(
    control: Control, character: str
) -> None:
    admin = await _admin(control)
    ids = await control.fixtures(admin)
    c, h = control.client, admin.auth
    saves = [
        (
            "POST",
            "/api/sender-profiles/",
            {"profile_name": f"P{character}", "from_address": f"news@{admin.company.domain}"},
            "profile_name",
        ),
        (
            "PATCH",
            f"/api/sender-profiles/{ids['sender']}/",
            {"from_name": f"News{character}"},
            "from_name",
        ),
        (
            "PATCH",
            f"/api/email-campaigns/{ids['campaign']}/",
            {"subject_line": f"Hi{character}"},
            "subject_line",
        ),
        (
            "PATCH",
            f"/api/contacts/{ids['contact']}/",
            {"first_name": f"Jane{character}"},
            "first_name",
        ),
        ("POST", "/api/contacts/", {"email": f"a{character}b@example.net"}, "email"),
    ]
    for method, path, body, field in saves:
        r = await c.request(method, path, headers=h, json=body)
        assert r.status_code == 422, (path, r.text)
        assert field in r.json()["details"]["fields"], r.text


@pytest.mark.parametrize(
    "from_name", ["ceo@other.example", "CEO <ceo@other.example>", "=?utf-8?q?ceo=40other.example?="]
)
async def test_a_sender_profile_cannot_show_another_domain_in_its_name(
    control: Control, from_name: str
) -> None:
    admin = await _admin(control)
    other = await control.company("other")
    assert other.domain == "other.example"
    r = await control.client.post(
        "/api/sender-profiles/",
        headers=admin.auth,
        json={
            "profile_name": "News",
            "from_name": from_name,
            "from_address": f"news@{admin.company.domain}",
        },
    )
    assert r.status_code == 422, r.text
    assert "from_name" in r.json()["details"]["fields"]


async def test_a_sender_profile_may_name_its_own_address(control: Control) -> None:
    admin = await _admin(control)
    own = f"news@{admin.company.domain}"
    r = await control.client.post(
        "/api/sender-profiles/",
        headers=admin.auth,
        json={"profile_name": "News", "from_name": f"Acme ({own})", "from_address": own},
    )
    assert r.status_code == 201, r.text


# --- referenced ids (issue 12.13) -----------------------------------------------------------


async def test_workflow_steps_cannot_name_another_companys_list_or_campaign(
    control: Control,
) -> None:
    admin = await _admin(control)
    other = await control.user(await control.company())
    mine = await control.fixtures(admin)
    theirs = await control.fixtures(other)
    c, h = control.client, admin.auth
    for step in (
        {"type": "add_to_list", "list_id": theirs["list"]},
        {"type": "remove_from_list", "list_id": theirs["list"]},
        {"type": "send_campaign", "campaign_id": theirs["campaign"]},
        {"type": "add_to_list"},
    ):
        body = workflow_body("XW", workflow_steps=[step])
        r = await c.post("/api/email-workflows/", headers=h, json=body)
        assert r.status_code == 422, (step, r.text)
        r = await c.patch(
            f"/api/email-workflows/{mine['workflow']}/", headers=h, json={"workflow_steps": [step]}
        )
        assert r.status_code == 422, (step, r.text)
    own = [{"type": "add_to_list", "list_id": mine["list"]}]
    r = await c.post(
        "/api/email-workflows/", headers=h, json=workflow_body("OW", workflow_steps=own)
    )
    assert r.status_code == 201, r.text


# --- the second factor (issue 12.3) ---------------------------------------------------------


async def _enable_totp(control: Control, user: User) -> pyotp.TOTP:
    c = control.client
    r = await c.post("/api/auth/totp/setup", headers=user.auth, json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    r = await c.post("/api/auth/totp/confirm", headers=user.auth, json={"code": totp.now()})
    assert r.status_code == 200, r.text
    return totp


async def test_totp_setup_needs_the_password(control: Control) -> None:
    admin = await _admin(control)
    c = control.client
    r = await c.post("/api/auth/totp/setup", headers=admin.auth)
    assert r.status_code in (415, 422), r.text
    for body in ({}, {"password": "wrong"}):
        r = await c.post("/api/auth/totp/setup", headers=admin.auth, json=body)
        assert r.status_code == 422, r.text


async def test_a_session_cannot_replace_an_enabled_totp_without_a_current_code(
    control: Control,
) -> None:
    admin = await _admin(control)
    totp = await _enable_totp(control, admin)
    c = control.client
    r = await c.post("/api/auth/totp/setup", headers=admin.auth, json={"password": PASSWORD})
    assert r.status_code == 422 and "code" in r.json()["details"]["fields"]
    # the enabled factor is still in force
    r = await c.post("/api/auth/login", json={"email": admin.email, "password": PASSWORD})
    assert r.json()["error_code"] == "totp_required"
    # with the password and a fresh code, a new set-up starts; the enabled factor stays in
    # force until the new one is confirmed
    r = await c.post(
        "/api/auth/totp/setup",
        headers=admin.auth,
        json={"password": PASSWORD, "code": totp.at(time.time() + 30)},
    )
    assert r.status_code == 200, r.text
    r = await c.post("/api/auth/login", json={"email": admin.email, "password": PASSWORD})
    assert r.json()["error_code"] == "totp_required"


async def test_a_totp_code_counts_once(control: Control) -> None:
    admin = await _admin(control)
    totp = await _enable_totp(control, admin)
    code = totp.at(time.time() + 30)
    await control.login(admin.email, totp_code=code)
    r = await control.client.post(
        "/api/auth/login", json={"email": admin.email, "password": PASSWORD, "totp_code": code}
    )
    assert r.status_code == 401, r.text
    # the confirm code cannot log in either
    r = await control.client.post(
        "/api/auth/login",
        json={"email": admin.email, "password": PASSWORD, "totp_code": totp.now()},
    )
    assert r.status_code == 401, r.text


async def test_enabling_totp_ends_the_users_other_sessions(control: Control) -> None:
    admin = await _admin(control)
    other_session = await control.login(admin.email)
    other = {"Authorization": f"Bearer {other_session['access_token']}"}
    assert (await control.client.get("/api/auth/me", headers=other)).status_code == 200
    await _enable_totp(control, admin)
    assert (await control.client.get("/api/auth/me", headers=other)).status_code == 401
    assert (await control.client.get("/api/auth/me", headers=admin.auth)).status_code == 200


# --- the WebSocket outlives no session (issue 12.6) -----------------------------------------


async def test_a_websocket_closes_within_seconds_of_logout_while_events_keep_coming(
    control: Control,
) -> None:
    admin = await _admin(control)
    watcher_tokens = await control.login(admin.email)
    ids = await control.fixtures(admin)
    url = control.url.replace("http://", "ws://") + "/api/ws"
    url += f"?access_token={watcher_tokens['access_token']}"
    async with websockets.connect(url, open_timeout=5) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "ready"
        watcher = {"Authorization": f"Bearer {watcher_tokens['access_token']}"}
        r = await control.client.post("/api/auth/logout", headers=watcher, json={})
        assert r.status_code in (200, 204), r.text
        logged_out = time.monotonic()
        body = campaign_body(ids["template"], ids["list"], ids["sender"])
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(15):
                while True:  # the other session keeps creating campaigns: events keep coming
                    await control.client.post(
                        "/api/email-campaigns/", headers=admin.auth, json=body
                    )
                    await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert time.monotonic() - logged_out < 3


# --- one spelling per login (issue 12.9) ----------------------------------------------------


async def test_unicode_case_variants_of_a_login_never_log_in(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)  # an ASCII address with an "i": admin<n>@...
    assert "i" in admin.email
    for variant in (
        admin.email.replace("i", "\u0130", 1),  # İ: PostgreSQL's lower() may map it to "i"
        admin.email.replace("i", "i\u0307", 1),
        admin.email.upper(),
        f"  {admin.email.replace('a', 'ａ', 1)} ",  # fullwidth a: NFKC folds it
    ):
        r = await control.client.post(
            "/api/auth/login", json={"email": variant, "password": PASSWORD}
        )
        if variant.strip().isascii() or "ａ" in variant:
            assert r.status_code == 200, (variant, r.text)  # the same account, one spelling
        else:
            assert r.status_code == 401, (variant, r.text)
    r = await control.client.post(
        "/api/users/",
        headers=admin.auth,
        json={"email": "j\u0130m@x.example", "role": "viewer", "password": PASSWORD + "!x"},
    )
    assert r.status_code == 422, r.text


# --- no credential in any log line (issue 12.10) --------------------------------------------


async def test_access_tokens_never_reach_the_logs(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = await _admin(control)
    token = admin.tokens["access_token"]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("info", "text")  # the daemon's logging, writing to the captured stderr
    # The daemon keeps uvicorn's own lines at warning; one who turns them on (to see every
    # WebSocket) still sees no token.
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_level = uvicorn_log.level
    uvicorn_log.setLevel(logging.INFO)
    try:
        url = control.url.replace("http://", "ws://") + f"/api/ws?access_token={token}"
        async with websockets.connect(url, open_timeout=5) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["event"] == "ready"
        logging.getLogger("test").info("client sent Authorization: Bearer %s", token)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        uvicorn_log.setLevel(uvicorn_level)
    logged = capsys.readouterr().err
    assert "WebSocket /api/ws?access_token=[redacted]" in logged  # uvicorn's own line
    assert "Bearer [redacted]" in logged
    assert token not in logged and token.split(".")[2] not in logged
