"""Authentication endpoints: login, refresh, logout, who am I, TOTP set-up.

POST /api/auth/login          {email, password, totp_code?} -> access + refresh token
POST /api/auth/refresh        {refresh_token} -> the next pair (the old one is spent)
POST /api/auth/logout         revokes the session (every token of it)
GET  /api/auth/me             the caller: user, company, role, permissions
POST /api/auth/totp/setup     a new TOTP secret (not enforced until confirmed)
POST /api/auth/totp/confirm   {code}: TOTP required at every later login
"""

from __future__ import annotations

from typing import Any

from control.auth import new_totp_secret, totp_step, totp_uri, verify_password
from control.errors import BadRequest, ValidationFailed
from control.fields import Field, Schema, ro
from control.routing import Api, Call, record
from mta.queries import Queries

SQL = Queries("control")

LOGIN = Schema(
    "Login",
    (
        Field("email", required=True, min_length=1, max_length=254),
        Field("password", required=True, min_length=1, max_length=1024),
        Field("totp_code", nullable=True, max_length=10),
    ),
)
TOKENS = Schema(
    "Tokens",
    (
        ro("access_token"),
        ro("refresh_token"),
        ro("token_type"),
        ro("expires_in", "integer"),
    ),
)
REFRESH = Schema("Refresh", (Field("refresh_token", required=True, max_length=200),))
CODE = Schema("TotpCode", (Field("code", required=True, max_length=10),))
SETUP = Schema(
    "TotpSetup",
    (
        Field("password", required=True, max_length=1024),
        Field("code", nullable=True, max_length=10, description="required when TOTP is on"),
    ),
)
ME = Schema(
    "Me",
    (
        ro("user_id", "id", nullable=True),
        ro("api_key_id", "id", nullable=True),
        ro("company_id", "id"),
        ro("role", nullable=True),
        ro("permissions", "array", items="string"),
        ro("mfa", "boolean"),
    ),
)

api = Api()


async def _record(call: Call) -> None:
    """The audit rows of an endpoint the pipeline does not wrap in a transaction."""
    async with call.services.db.acquire() as conn, conn.transaction():
        await record(conn, call)


@api.add(
    "POST",
    "/api/auth/login",
    "Log in",
    "auth",
    public=True,
    body=LOGIN,
    response=TOKENS,
    # The authenticator runs its own transactions on the pool: the pipeline must not hold a
    # connection around it, or as many concurrent logins as the pool has connections wait
    # for one another forever. The audit row is written here once the login is done.
    audited=False,
    errors=(
        (401, "wrong email, password or TOTP code, or a TOTP code is required"),
        (429, "too many failed logins; see Retry-After"),
    ),
)
async def login(call: Call) -> dict[str, Any]:
    body = call.body or {}
    pair = await call.services.auth.login(
        body["email"], body["password"], body.get("totp_code"), call.ip
    )
    call.audit(
        "user.login",
        "user",
        pair.user_id,
        None,
        {"session_id": str(pair.session_id)},
        company_id=pair.company_id,
        user_id=pair.user_id,
    )
    await _record(call)
    return pair.as_json()


@api.add(
    "POST",
    "/api/auth/refresh",
    "Exchange a refresh token for a new pair",
    "auth",
    public=True,
    body=REFRESH,
    response=TOKENS,
    audited=False,  # as login: the authenticator has its own transaction
    errors=((401, "unknown, spent or expired refresh token (a reused one ends its session)"),),
)
async def refresh(call: Call) -> dict[str, Any]:
    pair = await call.services.auth.refresh((call.body or {})["refresh_token"])
    return pair.as_json()


@api.add(
    "POST",
    "/api/auth/logout",
    "Log out: revoke this session",
    "auth",
    status=204,
    audited=False,  # as login: the authenticator writes on the pool
)
async def logout(call: Call) -> None:
    principal = call.principal
    assert principal is not None
    if principal.session_id is None:
        raise BadRequest("API keys have no session to log out of; revoke the key instead")
    await call.services.auth.logout(principal.session_id)
    call.audit("user.logout", "user", principal.user_id, None, None)
    await _record(call)


@api.add("GET", "/api/auth/me", "Who is calling", "auth", response=ME)
async def me(call: Call) -> dict[str, Any]:
    p = call.principal
    assert p is not None
    return {
        "user_id": p.user_id,
        "api_key_id": p.api_key_id,
        "company_id": p.company_id,
        "role": p.role,
        "permissions": sorted(p.permissions),
        "mfa": p.mfa,
    }


def _user_only(call: Call) -> int:
    p = call.principal
    if p is None or p.api_key_id is not None or p.user_id is None:
        raise BadRequest("only a logged-in user can set up TOTP")
    return p.user_id


async def _check_second_factor_change(call: Call, user: Any, body: dict[str, Any]) -> None:
    """Changing a second factor needs the password, and a current code when one is enabled:
    a stolen session alone must not replace or remove it (issue 12.3)."""
    auth = call.services.auth
    if not await verify_password(user["password_hash"], body["password"], auth.hasher):
        raise ValidationFailed({"password": "wrong password"})
    if user["totp_enabled"]:
        step = totp_step(user["totp_secret"], body.get("code") or "")
        if step is None or not await call.db.fetchval(SQL["use-totp-step"], user["id"], step):
            raise ValidationFailed({"code": "a current code of the enabled second factor"})


@api.add(
    "POST",
    "/api/auth/totp/setup",
    "Start TOTP set-up: a new secret (needs the password, and a current code when TOTP is on)",
    "auth",
    body=SETUP,
)
async def totp_setup(call: Call) -> dict[str, Any]:
    user_id = _user_only(call)
    user = await call.db.fetchrow(SQL["user-totp"], user_id)
    await _check_second_factor_change(call, user, call.body or {})
    secret = new_totp_secret()
    await call.db.execute(SQL["set-totp-pending"], user_id, secret)
    call.audit("user.totp_setup", "user", user_id, None, None)
    return {"secret": secret, "otpauth_uri": totp_uri(secret, user["email"])}


@api.add(
    "POST",
    "/api/auth/totp/confirm",
    "Confirm TOTP set-up with a code; the user's other sessions end",
    "auth",
    body=CODE,
    changes_principals=True,
)
async def totp_confirm(call: Call) -> dict[str, Any]:
    user_id = _user_only(call)
    user = await call.db.fetchrow(SQL["user-totp"], user_id)
    step = totp_step(user["totp_pending_secret"], (call.body or {})["code"])
    if step is None or not await call.db.fetchval(SQL["adopt-totp-pending"], user_id, step):
        raise ValidationFailed({"code": "wrong code (or no set-up started)"})
    # Sessions opened before (perhaps by whoever the new factor is meant to keep out) end.
    session = call.principal.session_id if call.principal else None
    await call.db.execute(SQL["revoke-other-sessions"], user_id, session, "totp_changed")
    call.audit("user.totp_enable", "user", user_id, None, {"totp_enabled": True})
    return {"totp_enabled": True}
