"""Credentials: SMTP logins and HTTP API keys, each belonging to one company.

Secrets are 256-bit random values generated here and shown once; the database keeps only
their SHA-256 (a slow password hash buys nothing for secrets with this much entropy, and a
fast check keeps AUTH cheap). API keys read `sm_<prefix>_<secret>`: the prefix finds the row,
the secret is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import asyncpg

from mta.queries import Queries

SQL = Queries("mta")
API_KEY_PREFIX = "sm_"
# Verified logins are remembered briefly (AUTH on every session is hot); a revoked credential
# stops working on every daemon within this time.
_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Credential:
    id: int | None  # None for a client on a trusted network (smtp.trusted_networks)
    company_id: int
    kind: str  # smtp | api | network


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What `create_*` returns: the only time the secret is visible."""

    id: int
    kind: str
    login: str  # SMTP username or the full API key
    secret: str  # SMTP password; for API keys the same as login


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create_smtp_login(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, username: str, description: str = ""
) -> IssuedCredential:
    password = secrets.token_urlsafe(24)
    cid = await db.fetchval(
        SQL["insert-credential"], company_id, "smtp", username, None, _hash(password), description
    )
    return IssuedCredential(cid, "smtp", username, password)


async def create_api_key(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, description: str = ""
) -> IssuedCredential:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = f"{API_KEY_PREFIX}{prefix}_{secret}"
    cid = await db.fetchval(
        SQL["insert-credential"], company_id, "api", None, prefix, _hash(secret), description
    )
    return IssuedCredential(cid, "api", key, key)


class CredentialStore:
    """Verifies credentials against the database, with a short positive cache."""

    def __init__(self, db: asyncpg.Pool) -> None:
        self._db = db
        self._cache: dict[tuple[str, bytes], tuple[float, Credential]] = {}

    def _cached(self, key: tuple[str, bytes]) -> Credential | None:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _remember(self, key: tuple[str, bytes], credential: Credential) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + _CACHE_SECONDS, credential)

    async def verify_smtp(self, username: str, password: str) -> Credential | None:
        digest = _hash(password)
        key = ("smtp:" + username, digest)
        if cached := self._cached(key):
            return cached
        row = await self._db.fetchrow(SQL["smtp-credential"], username)
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), digest):
            return None
        credential = Credential(row["id"], row["company_id"], "smtp")
        self._remember(key, credential)
        return credential

    async def verify_api_key(self, key: str) -> Credential | None:
        if not key.startswith(API_KEY_PREFIX):
            return None
        prefix, _, secret = key[len(API_KEY_PREFIX) :].partition("_")
        if not prefix or not secret:
            return None
        digest = _hash(secret)
        cache_key = ("api:" + prefix, digest)
        if cached := self._cached(cache_key):
            return cached
        row = await self._db.fetchrow(SQL["api-credential"], prefix)
        if row is None or not hmac.compare_digest(bytes(row["secret_hash"]), digest):
            return None
        credential = Credential(row["id"], row["company_id"], "api")
        self._remember(cache_key, credential)
        return credential


async def revoke(db: asyncpg.Pool | asyncpg.Connection, credential_id: int) -> bool:
    return await db.fetchval(SQL["revoke-credential"], credential_id) is not None
