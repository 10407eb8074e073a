"""Authentication over HTTP: login, refresh rotation and theft detection, logout,
TOTP and the company's MFA requirement, API-key-less sessions, the CLI bootstrap."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import jwt
import pyotp

from tests.support.fixtures_control import PASSWORD, Control


async def test_login_gives_a_short_lived_jwt_and_a_refresh_token(control: Control) -> None:
    company = await control.company()
    user = await control.user(company, "analyst")
    tokens = user.tokens
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(user.id) and claims["cid"] == company.id
    assert claims["exp"] - claims["iat"] == 900
    me = await control.client.get("/api/auth/me", headers=user.auth)
    assert me.json()["role"] == "analyst" and "campaigns:read" in me.json()["permissions"]


async def test_wrong_password_and_unknown_user_look_the_same(control: Control) -> None:
    company = await control.company()
    user = await control.user(company, login=False)
    c = control.client
    wrong = await c.post("/api/auth/login", json={"email": user.email, "password": "x" * 12})
    unknown = await c.post("/api/auth/login", json={"email": "no@body.test", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(control: Control) -> None:
    company = await control.company()
    user = await control.user(company)
    c = control.client
    first = user.tokens["refresh_token"]
    r1 = await c.post("/api/auth/refresh", json={"refresh_token": first})
    assert r1.status_code == 200
    second = r1.json()
    assert second["refresh_token"] != first
    # The new access token works.
    h2 = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await c.get("/api/auth/me", headers=h2)).status_code == 200
    # An attacker replays the first (already used) refresh token: the family is revoked.
    replay = await c.post("/api/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    assert replay.json()["details"]["reason"] == "refresh_token_reuse"
    # Everything of that session is dead now: the rotated refresh token and the access tokens.
    again = await c.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401
    assert (await c.get("/api/auth/me", headers=h2)).status_code == 401
    assert (await c.get("/api/auth/me", headers=user.auth)).status_code == 401
    # Another login (another family) is unaffected.
    fresh = await control.login(user.email)
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert (await c.get("/api/auth/me", headers=headers)).status_code == 200


async def test_logout_revokes_access_and_refresh(control: Control) -> None:
    company = await control.company()
    user = await control.user(company)
    c = control.client
    assert (await c.post("/api/auth/logout", headers=user.auth)).status_code == 204
    assert (await c.get("/api/auth/me", headers=user.auth)).status_code == 401
    r = await c.post("/api/auth/refresh", json={"refresh_token": user.tokens["refresh_token"]})
    assert r.status_code == 401


async def test_forged_and_expired_tokens_are_refused(control: Control) -> None:
    company = await control.company()
    user = await control.user(company)
    claims = jwt.decode(user.tokens["access_token"], options={"verify_signature": False})
    forged = jwt.encode({**claims, "cid": 999}, "guessed-secret-" * 4, algorithm="HS256")
    expired = jwt.encode(
        {**claims, "exp": claims["iat"] - 1}, "guessed-secret-" * 4, algorithm="HS256"
    )
    none_alg = jwt.encode(claims, key=None, algorithm="none")
    for token in (forged, expired, none_alg, "garbage", "a.b.c"):
        r = await control.client.get(
            "/api/email-campaigns/", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401, token
        assert r.json()["error_code"] in ("invalid_token", "unauthorized")
    assert (await control.client.get("/api/email-campaigns/")).status_code == 401


async def test_deactivating_a_user_ends_their_sessions(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)
    user = await control.user(company, "analyst")
    r = await control.client.put(
        f"/api/users/{user.id}/", headers=admin.auth, json={"is_active": False}
    )
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await control.client.get("/api/auth/me", headers=user.auth)).status_code == 401
    login = await control.client.post(
        "/api/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_the_last_admin_cannot_be_demoted(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)
    r = await control.client.put(
        f"/api/users/{admin.id}/", headers=admin.auth, json={"role": "analyst"}
    )
    assert r.status_code == 409
    r = await control.client.delete(f"/api/users/{admin.id}/", headers=admin.auth)
    assert r.status_code == 409


async def test_totp_second_factor_and_mfa_required_for_send(control: Control) -> None:
    company = await control.company()
    admin = await control.user(company)
    ids = await control.fixtures(admin)
    c = control.client
    r = await c.put("/api/settings/", headers=admin.auth, json={"mfa_required_for": ["send"]})
    assert r.status_code == 200, r.text
    # Without TOTP, sending is refused with a clear code.
    r = await c.post(f"/api/email-campaigns/{ids['campaign']}/send/", headers=admin.auth, json={})
    assert r.status_code == 403 and r.json()["error_code"] == "mfa_required"
    # Set up TOTP.
    setup = (
        await c.post("/api/auth/totp/setup", headers=admin.auth, json={"password": PASSWORD})
    ).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])
    bad = await c.post("/api/auth/totp/confirm", headers=admin.auth, json={"code": "000000"})
    assert bad.status_code == 422
    ok = await c.post("/api/auth/totp/confirm", headers=admin.auth, json={"code": totp.now()})
    assert ok.status_code == 200
    # Now a login needs the code...
    r = await c.post("/api/auth/login", json={"email": admin.email, "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error_code"] == "totp_required"
    # (each code counts once: the next step's code, within the allowed drift)
    tokens = await control.login(admin.email, totp_code=totp.at(time.time() + 30))
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    # ... and a TOTP-verified session may send.
    r = await c.post(f"/api/email-campaigns/{ids['campaign']}/send/", headers=headers, json={})
    assert r.status_code == 200, r.text
    assert r.json()["campaign_status"] == "sending"


def test_cli_creates_company_and_admin(tmp_path, database_url: str) -> None:
    config = tmp_path / "sendmill.toml"
    config.write_text(
        f'state_dir = "{tmp_path}"\nsecret = "s"\n[database]\nurl = "{database_url}"\n'
        "[control]\npassword_time_cost = 1\npassword_memory_kib = 1024\n"
    )
    run = [sys.executable, "-m", "mta.cli", "control"]
    out = subprocess.run(
        [*run, "create-company", "globex", "--code-prefix", "GX", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "company globex has id" in out.stdout
    out = subprocess.run(
        [
            *run,
            "create-admin",
            "--company",
            "globex",
            "--email",
            "Boss@Globex.test",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    password = out.stdout.split("password (shown once): ")[1].strip()
    assert len(password) >= 20
    refused = subprocess.run(
        [
            *run,
            "create-user",
            "--company",
            "nope",
            "--email",
            "a@b.test",
            "--role",
            "sales",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "no company named 'nope'" in refused.stderr

    async def login() -> None:
        from mta import database

        pool = await database.connect(database_url, 2)
        try:
            row = await pool.fetchrow("SELECT role, email, password_hash FROM users")
            assert row["role"] == "admin" and row["email"] == "boss@globex.test"
            assert row["password_hash"].startswith("$argon2id$")
            prefix = await pool.fetchval(
                "SELECT code_prefix FROM company_profiles p JOIN companies c"
                " ON c.id = p.company_id WHERE c.name = 'globex'"
            )
            assert prefix == "GX"
        finally:
            await pool.close()

    asyncio.run(login())
    for cmd in (["create-company"], ["create-admin"], ["create-user"]):
        help_out = subprocess.run([*run, *cmd, "--help"], capture_output=True, text=True)
        assert help_out.returncode == 0 and "usage:" in help_out.stdout


async def test_many_concurrent_logins_and_writes_do_not_exhaust_the_pool(control: Control) -> None:
    # The pool has 10 connections; a handler that took a second one while the pipeline held
    # the first deadlocked under this load (every login waited for a connection forever).
    company = await control.company()
    admin = await control.user(company)
    users = [await control.user(company, "analyst", login=False) for _ in range(24)]
    results = await asyncio.wait_for(
        asyncio.gather(*(control.login(u.email) for u in users)), timeout=30
    )
    assert len({r["refresh_token"] for r in results}) == 24
    writes = await asyncio.wait_for(
        asyncio.gather(
            *(
                control.client.post(
                    "/api/contacts/", headers=admin.auth, json={"email": f"c{i}@example.org"}
                )
                for i in range(30)
            )
        ),
        timeout=30,
    )
    assert [w.status_code for w in writes] == [201] * 30
