"""Authentication: passwords (argon2id), JWT access tokens, rotating refresh tokens, TOTP,
login throttling and API keys.

- A login opens a *session*, which is one refresh-token family. The access token (HS256 JWT,
  minutes) names the session; each request checks the session is still live, so logout and
  revocation end access at once rather than at the token's expiry.
- A refresh token is good once: using it marks it used and issues the next one in the same
  family. A used token presented again means it was copied: the whole family is revoked
  (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
- Principals are cached for seconds per credential and dropped as soon as PostgreSQL
  announces a change to sessions, users or API keys (control/principal_cache.py).
- Failed logins are throttled by account and client address, by address, and (far higher)
  by account, in the database so the limits hold across daemons: past a limit, logins answer
  429 until the window ends. An attacker cannot lock the owner out (control/login_throttle.py).
- API keys read `smc_<prefix>_<secret>`; the prefix finds the row, the 256-bit secret is
  compared as SHA-256 in constant time (a slow hash adds nothing at that entropy). Their last
  use is recorded to within a minute, off the request path (control/key_usage.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import argon2
import asyncpg
import jwt
import pyotp

from control import metrics
from control.errors import (
    InvalidToken,
    TooManyRequests,
    TotpRequired,
    Unauthorized,
    ValidationFailed,
)
from control.key_usage import KeyUsage
from control.login_throttle import LoginThrottle
from control.permissions import ALL_PERMISSIONS, role_permissions
from control.principal import Principal
from control.principal_cache import DEFAULT_TTL as DEFAULT_PRINCIPAL_TTL
from control.principal_cache import PrincipalCache
from mta.queries import Queries

SQL = Queries("control")
API_KEY_PREFIX = "smc_"
REFRESH_PREFIX = "smr_"
JWT_ALGORITHM = "HS256"
JWT_ISSUER = "sendmill-control"

DEFAULT_HASHER = argon2.PasswordHasher()  # RFC 9106 low-memory profile: t=3, m=64 MiB


def password_hasher(time_cost: int = 3, memory_kib: int = 65536) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


async def hash_password(password: str, hasher: argon2.PasswordHasher = DEFAULT_HASHER) -> str:
    """argon2id hash of `password` (in a thread: it costs tens of milliseconds on purpose)."""
    return await asyncio.to_thread(hasher.hash, password)


async def verify_password(
    password_hash: str, password: str, hasher: argon2.PasswordHasher = DEFAULT_HASHER
) -> bool:
    def check() -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def check_password_strength(password: str) -> None:
    """NIST SP 800-63B §5.1.1.2: at least 12 characters, no other composition rules."""
    if len(password) < 12:
        raise ValidationFailed({"password": "must be at least 12 characters"})
    if len(password) > 1024:
        raise ValidationFailed({"password": "must be at most 1024 characters"})


def _sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    user_id: int
    company_id: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """The only time the key is visible."""

    record: dict[str, Any]
    key: str


class Authenticator:
    """Logs users in and out, rotates refresh tokens and turns credentials into principals."""

    def __init__(
        self,
        db: asyncpg.Pool,
        jwt_secret: bytes,
        *,
        access_ttl: float = 900.0,
        refresh_ttl: float = 30 * 86400.0,
        max_failures: int = 5,
        max_failures_per_address: int = 20,
        max_failures_per_account: int = 100,
        lockout: float = 900.0,
        hasher: argon2.PasswordHasher = DEFAULT_HASHER,
        principal_ttl: float = DEFAULT_PRINCIPAL_TTL,
    ) -> None:
        self._db = db
        self.hasher = hasher
        # Verified against when the login name is unknown, so the answer takes as long.
        self._dummy_hash = hasher.hash(secrets.token_hex(16))
        self._secret = jwt_secret
        self._access_ttl = int(access_ttl)
        self._refresh_ttl = refresh_ttl
        self.principals = PrincipalCache(db, principal_ttl)
        self.throttle = LoginThrottle(
            db,
            per_account_and_address=max_failures,
            per_address=max_failures_per_address,
            per_account=max_failures_per_account,
            window=lockout,
        )
        self.key_usage = KeyUsage(db)

    # --- login / refresh / logout -----------------------------------------------------------

    async def login(
        self, email: str, password: str, totp_code: str | None, ip: str | None
    ) -> TokenPair:
        """A new session for `email` (counted in sendmill_control_logins_total), or the
        reason there is none: 401, 401 totp_required, 429 throttled."""
        try:
            pair = await self._login(email, password, totp_code, ip)
        except TooManyRequests:
            metrics.LOGINS.labels("throttled").inc()
            raise
        except TotpRequired:
            metrics.LOGINS.labels("totp_required").inc()
            raise
        except Unauthorized:
            metrics.LOGINS.labels("failure").inc()
            raise
        metrics.LOGINS.labels("success").inc()
        return pair

    async def _login(
        self, email: str, password: str, totp_code: str | None, ip: str | None
    ) -> TokenPair:
        # One spelling per account for the throttle and the lookup alike (issue 12.9): "İ"
        # variants must not count as other accounts, nor meet a database lower() that maps
        # them onto a real one. Login addresses are ASCII; anything else names no account.
        email = login_address(email)
        await self.throttle.check(email, ip)
        user = None
        if email.isascii():
            user = await self._db.fetchrow(SQL["user-for-login"], email)
        stored = user["password_hash"] if user else self._dummy_hash
        ok = await verify_password(stored, password, self.hasher)
        if not user or not ok or not user["is_active"]:
            await self.throttle.failed(email, ip)
            raise Unauthorized("wrong email or password", reason="invalid_credentials")
        mfa = False
        if user["totp_enabled"]:
            if not totp_code:
                raise TotpRequired("this account requires a TOTP code", field="totp_code")
            step = totp_step(user["totp_secret"], totp_code)
            if step is None or not await self._db.fetchval(SQL["use-totp-step"], user["id"], step):
                # wrong, or already used: RFC 6238 §5.2 wants each code accepted once
                await self.throttle.failed(email, ip)
                raise Unauthorized("wrong or already used TOTP code", reason="invalid_totp")
            mfa = True
        await self.throttle.succeeded(email, ip)
        if self.hasher.check_needs_rehash(user["password_hash"]):
            new_hash = await hash_password(password, self.hasher)
            await self._db.execute(SQL["update-password-hash"], user["id"], new_hash)
        session_id = uuid.uuid4()
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(SQL["insert-session"], session_id, user["id"], mfa, ip)
            await conn.execute(SQL["touch-last-login"], user["id"])
            refresh = await self._new_refresh(conn, session_id)
        return self._pair(user["id"], user["company_id"], session_id, mfa, refresh)

    async def refresh(self, token: str) -> TokenPair:
        """Rotate `token`: the next pair, or 401 (and the family revoked when it was reused)."""
        if not token.startswith(REFRESH_PREFIX):
            raise InvalidToken("not a refresh token")
        async with self._db.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SQL["use-refresh-token"], _sha256(token))
            if row is None:
                raise InvalidToken("unknown refresh token")
            if row["reused"]:
                await conn.execute(SQL["revoke-session"], row["session_id"], "refresh_token_reuse")
                # Committed although we answer 401: revoking is the point.
                reuse = True
            else:
                reuse = False
                if row["expired"] or not row["live"]:
                    raise InvalidToken("the session has ended; log in again")
                refresh = await self._new_refresh(conn, row["session_id"])
        if reuse:
            self.principals.invalidate()
            raise InvalidToken(
                "refresh token already used: every token of this session is revoked",
                reason="refresh_token_reuse",
            )
        return self._pair(row["user_id"], row["company_id"], row["session_id"], row["mfa"], refresh)

    async def logout(self, session_id: uuid.UUID) -> None:
        await self._db.execute(SQL["revoke-session"], session_id, "logout")
        self.principals.invalidate()

    async def _new_refresh(self, conn: asyncpg.Connection, session_id: uuid.UUID) -> str:
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        await conn.execute(
            SQL["insert-refresh-token"], _sha256(token), session_id, self._refresh_ttl
        )
        return token

    def _pair(
        self, user_id: int, company_id: int, session_id: uuid.UUID, mfa: bool, refresh: str
    ) -> TokenPair:
        now = int(time.time())
        claims = {
            "iss": JWT_ISSUER,
            "sub": str(user_id),
            "cid": company_id,
            "sid": str(session_id),
            "mfa": mfa,
            "iat": now,
            "exp": now + self._access_ttl,
        }
        access = jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)
        return TokenPair(access, refresh, self._access_ttl, session_id, user_id, company_id)

    # --- per request ------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization: Bearer ...` header, or 401."""
        if not authorization:
            raise Unauthorized()
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        if credential.startswith(API_KEY_PREFIX):
            return await self._api_key_principal(credential)
        return await self.token_principal(credential)

    async def token_principal(self, token: str) -> Principal:
        cached = self.principals.get(token)
        if cached is not None:
            return cached
        generation = self.principals.generation
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=JWT_ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            )
            session_id = uuid.UUID(str(claims["sid"]))
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidToken(f"invalid access token: {exc}") from None
        row = await self._db.fetchrow(SQL["session-principal"], session_id)
        if row is None:
            raise InvalidToken("the session has ended; log in again")
        principal = Principal(
            company_id=row["company_id"],
            permissions=role_permissions(row["role"]),
            user_id=row["user_id"],
            role=row["role"],
            mfa=row["mfa"],
            session_id=session_id,
        )
        self.principals.put(token, principal, generation, expires=float(claims["exp"]))
        return principal

    async def _api_key_principal(self, key: str) -> Principal:
        cached = self.principals.get(key)
        if cached is not None:
            self.key_usage.used(cached.api_key_id)
            return cached
        generation = self.principals.generation
        prefix, _, secret = key[len(API_KEY_PREFIX) :].partition("_")
        row = await self._db.fetchrow(SQL["api-key-principal"], prefix) if secret else None
        if row is None or not hmac.compare_digest(row["secret_hash"], _sha256(secret)):
            raise InvalidToken("invalid API key")
        self.key_usage.used(row["id"])
        principal = Principal(
            company_id=row["company_id"],
            permissions=frozenset(row["permissions"]) & role_permissions(row["role"]),
            user_id=row["user_id"],
            api_key_id=row["id"],
            role=None,
        )
        self.principals.put(key, principal, generation)
        return principal

    # --- API keys ---------------------------------------------------------------------------

    async def create_api_key(
        self, conn: asyncpg.Connection, creator: Principal, name: str, permissions: list[str]
    ) -> IssuedApiKey:
        unknown = sorted(set(permissions) - ALL_PERMISSIONS)
        if unknown:
            raise ValidationFailed({"permissions": f"unknown permissions {unknown}"})
        beyond = sorted(set(permissions) - creator.permissions)
        if beyond:
            raise ValidationFailed(
                {"permissions": f"you cannot grant permissions you do not hold: {beyond}"}
            )
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = await conn.fetchrow(
            SQL["insert-api-key"],
            creator.company_id,
            creator.user_id,
            name,
            prefix,
            _sha256(secret),
            sorted(set(permissions)),
        )
        return IssuedApiKey(dict(record), f"{API_KEY_PREFIX}{prefix}_{secret}")


def login_address(text: str) -> str:
    """A login address as accounts are compared everywhere: NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


# --- TOTP (RFC 6238) ------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name="Sendmill")


def verify_totp(secret: str | None, code: str) -> bool:
    """One step of clock drift either way is accepted (RFC 6238 §5.2)."""
    return totp_step(secret, code) is not None


def totp_step(secret: str | None, code: str, now: float | None = None) -> int | None:
    """The time step (RFC 6238 T) `code` is valid for, one step of drift either way, or None.
    Callers spend the step (`use-totp-step`) so that a code counts once (§5.2)."""
    if not secret or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    for drift in (0, -1, 1):
        at = now + drift * totp.interval
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(datetime.fromtimestamp(at, UTC))
    return None
