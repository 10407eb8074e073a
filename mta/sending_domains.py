"""Sending domains: which domains a company may send From, and the ones managed at run time.

`may_send_from` is the one answer to "may this company send From this domain", for the
submission checks and the control API alike. A domain of the config may always send (the
config is the bootstrap and the tests' way in); a domain added through the API or the CLI
sends once a DKIM key of it is active, that is once its record was found correct in DNS
(`domains.require_verified_dkim = false` relaxes that for development).

`DomainManager` is what the API and the CLI call: add a domain (keys generated, sealed with
the server secret), list, check its records in DNS (activating keys that verify), rotate,
delete. `ManagedSigners` keeps the delivery engine's signers current: it polls a cheap version
of the keys table and reloads when it moves, so every daemon signs with a new or rotated key
within `domains.refresh_interval`, without a restart.

Rotation: new keys under a new selector are pending; once every one of them verifies, they
become active and the previous active keys start retiring — still published and verifying
for `domains.rotation_overlap` (mail signed with them is still in transit or being
re-checked), then retired and their private half erased.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from mta.config import Config
from mta.dkim import (
    ED25519_SHA256,
    RSA_SHA256,
    DkimError,
    DkimSigner,
    DkimSigners,
    SigningKey,
    generate_pem,
)
from mta.dns import Resolver, to_ascii
from mta.dns_records import DnsPlan, PublishedKey, Status, check, records_for
from mta.domain_keys import KeySeal, KeySealError
from mta.queries import Queries

log = logging.getLogger("sendmill.domains")
SQL = Queries("mta")
_MAX_DOMAIN = 253  # RFC 1035 §2.3.4
_CHECK_BATCH = 50  # domains checked per periodic round


class SendingDomainError(Exception):
    """A sending-domain request that cannot be done; each subclass says why."""


class InvalidDomain(SendingDomainError):
    pass


class DomainTaken(SendingDomainError):
    pass


class DomainNotFound(SendingDomainError):
    pass


class UnknownCompany(SendingDomainError):
    pass


class NotManaged(SendingDomainError):
    """The domain comes from the config file: change it there."""


async def may_send_from(
    db: asyncpg.Pool | asyncpg.Connection,
    company_id: int,
    domain: str,
    *,
    require_verified: bool = True,
) -> bool:
    """Whether company `company_id` may send mail From `domain` (lower-case, IDNA)."""
    return await db.fetchval(SQL["company-may-send-from"], company_id, domain, require_verified)


async def sendable_domains(
    db: asyncpg.Pool | asyncpg.Connection, company_id: int, *, require_verified: bool = True
) -> list[str]:
    """The domains company `company_id` may send From."""
    rows = await db.fetch(SQL["company-sendable-domains"], company_id, require_verified)
    return [r["domain"] for r in rows]


def valid_domain(text: str) -> str:
    """`text` as a sending domain is stored (lower-case IDNA), or InvalidDomain."""
    domain = to_ascii(text)
    labels = domain.split(".")
    if (
        len(domain) > _MAX_DOMAIN
        or len(labels) < 2
        or not domain.isascii()
        or any(
            not 0 < len(label) <= 63
            or label.startswith("-")
            or label.endswith("-")
            or not label.replace("-", "").isalnum()
            for label in labels
        )
    ):
        raise InvalidDomain(f"{text!r} is not a domain name")
    return domain


def dns_plan(config: Config, pool: str = "default") -> DnsPlan:
    """Where a domain's records point, from the server's configuration."""
    addresses = config.pool(pool).source_addresses
    mechanisms = tuple(f"ip6:{a}" if ":" in a else f"ip4:{a}" for a in addresses)
    tracking = urlsplit(config.tracker.base_url).hostname if config.tracker.listen else None
    return DnsPlan(
        hostname=config.hostname,
        bounce_domain=config.bounce.domain,
        spf_mechanisms=mechanisms or (f"a:{config.hostname}",),
        tracking_host=tracking,
    )


def _new_selector(when: dt.datetime, algorithm: str) -> str:
    # Dated, so an operator sees a key's age in DNS; random, so two rotations a day differ.
    base = f"s{when:%Y%m}-{secrets.token_hex(2)}"
    return base + "-ed" if algorithm == ED25519_SHA256 else base


Ref = int | str  # a sending domain by id (the API's paths) or by name (the CLI)


class DomainManager:
    """Sending domains managed at run time. `company_id` None is the operator, acting on any
    company's domains; the API always passes the caller's, so a tenant never sees another's."""

    def __init__(
        self,
        db: asyncpg.Pool,
        config: Config,
        seal: KeySeal,
        resolver: Callable[[], Resolver] | None = None,
    ) -> None:
        self._db = db
        self._config = config
        self._seal = seal
        # A fresh resolver per check: a record just published must not hide behind a cached
        # NXDOMAIN of the previous check.
        self._resolver = resolver or (
            lambda: Resolver(config.dns.resolvers, config.dns.timeout, cache_ttl_max=0)
        )

    async def add(self, company_id: int, text: str, *, ed25519: bool = False) -> dict[str, Any]:
        domain = valid_domain(text)
        algorithms = (RSA_SHA256, ED25519_SHA256) if ed25519 else (RSA_SHA256,)
        keys = await self._generate(domain, algorithms)
        async with self._db.acquire() as conn, conn.transaction():
            domain_id = await conn.fetchval(
                SQL["insert-managed-domain"], company_id, domain, "default"
            )
            if domain_id is None:
                raise DomainTaken(f"{domain} is already a sending domain")
            for selector, algorithm, record, sealed in keys:
                await conn.execute(
                    SQL["insert-dkim-key"], domain_id, selector, algorithm, record, sealed
                )
            return await self._view(conn, await self._row(conn, company_id, domain))

    @property
    def require_verified(self) -> bool:
        """Whether an added domain waits for its DKIM record to verify before it sends."""
        return self._config.domains.require_verified_dkim

    async def company(self, name: str, *, create: bool = False) -> int:
        """The id of company `name` (the operator's tools name companies)."""
        if create:
            return await self._db.fetchval(SQL["ensure-company"], name)
        row = await self._db.fetchrow(SQL["company-by-name"], name)
        if row is None:
            raise UnknownCompany(f"no company named {name!r}")
        return row["id"]

    async def list(self, company_id: int | None) -> list[dict[str, Any]]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(SQL["list-domains"], company_id)
            return [await self._view(conn, row) for row in rows]

    async def get(self, company_id: int | None, ref: Ref) -> dict[str, Any]:
        async with self._db.acquire() as conn, conn.transaction():
            return await self._view(conn, await self._row(conn, company_id, ref))

    async def verify(self, company_id: int | None, ref: Ref) -> dict[str, Any]:
        """Check every record in DNS; activate pending keys once all of them verify."""
        async with self._db.acquire() as conn:
            row = await self._row_unlocked(conn, company_id, ref)
            keys = await conn.fetch(SQL["domain-keys"], row["id"])
        findings = await check(self._records(row, keys), self._resolver())
        correct = {f.record.selector for f in findings if f.status is Status.CORRECT}
        pending = [k for k in keys if k["state"] == "pending"]
        async with self._db.acquire() as conn, conn.transaction():
            row = await self._row(conn, company_id, ref)  # locked: one verification at a time
            switch = bool(pending) and all(k["selector"] in correct for k in pending)
            if switch:
                overlap = dt.timedelta(seconds=self._config.domains.rotation_overlap)
                retire_at = dt.datetime.now(dt.UTC) + overlap
                await conn.execute(SQL["retire-active-keys"], row["id"], retire_at)
                await conn.execute(SQL["activate-pending-keys"], row["id"])
                log.info("DKIM keys of %s verified and active", row["domain"])
            await self._finish_retirements(conn)
            active = switch or any(k["state"] == "active" for k in keys)
            report = [f.as_json() for f in findings]
            await conn.execute(SQL["record-domain-check"], row["id"], report, active)
            return await self._view(conn, await self._row(conn, company_id, ref))

    async def rotate(
        self, company_id: int | None, ref: Ref, *, ed25519: bool | None = None
    ) -> dict[str, Any]:
        """New pending keys under a new selector (one per algorithm in use, or as asked); the
        current ones keep signing until the new ones verify."""
        async with self._db.acquire() as conn:
            row = await self._row_unlocked(conn, company_id, ref)
            keys = await conn.fetch(SQL["domain-keys"], row["id"])
        self._check_managed(row)
        in_use = {k["algorithm"] for k in keys} or {RSA_SHA256}
        if ed25519 is not None:
            in_use = {RSA_SHA256, ED25519_SHA256} if ed25519 else {RSA_SHA256}
        generated = await self._generate(row["domain"], sorted(in_use, key=_rsa_first))
        async with self._db.acquire() as conn, conn.transaction():
            row = await self._row(conn, company_id, ref)
            await conn.execute(SQL["drop-pending-keys"], row["id"])
            for selector, algorithm, record, sealed in generated:
                await conn.execute(
                    SQL["insert-dkim-key"], row["id"], selector, algorithm, record, sealed
                )
            return await self._view(conn, row)

    async def delete(self, company_id: int | None, ref: Ref) -> None:
        async with self._db.acquire() as conn, conn.transaction():
            row = await self._row(conn, company_id, ref)
            self._check_managed(row)
            await conn.execute(SQL["delete-domain"], row["id"])

    async def verify_due(self) -> int:
        """The periodic check: domains not checked within `domains.verify_interval`."""
        interval = self._config.domains.verify_interval
        async with self._db.acquire() as conn:
            await self._finish_retirements(conn)
            rows = await conn.fetch(SQL["domains-due-for-check"], interval, _CHECK_BATCH)
        for row in rows:
            with contextlib.suppress(DomainNotFound):  # deleted meanwhile
                await self.verify(None, row["domain"])
        return len(rows)

    # --- helpers ------------------------------------------------------------------------------

    async def _generate(
        self, domain: str, algorithms: Sequence[str]
    ) -> list[tuple[str, str, str, bytes]]:
        now = dt.datetime.now(dt.UTC)
        out = []
        for algorithm in algorithms:
            # RSA key generation takes tens of milliseconds of CPU: not on the event loop.
            pem, record = await asyncio.to_thread(generate_pem, algorithm)
            selector = _new_selector(now, algorithm)
            out.append((selector, algorithm, record, self._seal.seal(pem, domain, selector)))
        return out

    @staticmethod
    async def _row(conn: asyncpg.Connection, company_id: int | None, ref: Ref) -> asyncpg.Record:
        if isinstance(ref, int):
            row = await conn.fetchrow(SQL["get-domain-by-id"], company_id, ref)
        else:
            row = await conn.fetchrow(SQL["get-domain"], company_id, to_ascii(ref))
        if row is None:
            raise DomainNotFound(f"no sending domain {ref}")
        return row

    async def _row_unlocked(
        self, conn: asyncpg.Connection, company_id: int | None, ref: Ref
    ) -> asyncpg.Record:
        async with conn.transaction():
            return await self._row(conn, company_id, ref)

    @staticmethod
    def _check_managed(row: asyncpg.Record) -> None:
        if row["origin"] != "api":
            raise NotManaged(f"{row['domain']} is configured in the config file: change it there")

    @staticmethod
    async def _finish_retirements(conn: asyncpg.Connection) -> None:
        for done in await conn.fetch(SQL["finish-retirements"]):
            log.info("DKIM selector %s retired: its private key is erased", done["selector"])

    def _records(self, row: asyncpg.Record, keys: Sequence[asyncpg.Record]) -> list:
        published = [
            PublishedKey(k["selector"], k["algorithm"], k["public_record"], k["state"])
            for k in keys
        ]
        return records_for(row["domain"], published, dns_plan(self._config, row["pool"]))

    async def _view(self, conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
        keys = await conn.fetch(SQL["domain-keys"], row["id"])
        sendable = await may_send_from(
            conn,
            row["company_id"],
            row["domain"],
            require_verified=self._config.domains.require_verified_dkim,
        )
        return {
            "id": row["id"],
            "domain": row["domain"],
            "company": row["company"],
            "origin": row["origin"],
            "sendable": sendable,
            "verified_at": row["verified_at"],
            "checked_at": row["checked_at"],
            "created_at": row["created_at"],
            "dkim_keys": [
                {
                    "selector": k["selector"],
                    "algorithm": k["algorithm"],
                    "state": k["state"],
                    "created_at": k["created_at"],
                    "activated_at": k["activated_at"],
                    "retire_at": k["retire_at"],
                }
                for k in keys
            ],
            "records": [r.as_json() for r in self._records(row, keys)],
            "last_check": row["last_check"],
        }


def _rsa_first(algorithm: str) -> int:
    return 0 if algorithm == RSA_SHA256 else 1


class ManagedSigners:
    """Keeps `signers`' run-time domains current in one process: polls the keys table's
    version every `interval` seconds and reloads the signing keys when it moved."""

    def __init__(
        self,
        db: asyncpg.Pool,
        signers: DkimSigners,
        seal: KeySeal,
        interval: float,
        require_verified: bool,
    ) -> None:
        self._db = db
        self._signers = signers
        self.signers = signers  # the delivery engine's: the daemon swaps the config's on reload
        self._seal = seal
        self._interval = interval
        self._relaxed = not require_verified
        self._version: tuple[int, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Reload when the keys changed; True when it did."""
        row = await self._db.fetchrow(SQL["managed-keys-version"])
        version = (row["n"], row["newest"])
        if version == self._version:
            return False
        rows = await self._db.fetch(SQL["managed-signing-keys"], self._relaxed)
        keys: dict[str, list[SigningKey]] = {}
        for r in rows:
            try:
                pem = self._seal.open(r["sealed_key"], r["domain"], r["selector"])
                key = SigningKey.from_pem(r["domain"], r["selector"], pem, r["algorithm"])
            except (KeySealError, DkimError) as exc:
                log.error("cannot load DKIM key: %s", exc)
                continue
            keys.setdefault(r["domain"], []).append(key)
        self._signers.set_managed({d: DkimSigner(k) for d, k in keys.items()})
        self._version = version
        return True

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="dkim-managed-keys")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception as exc:  # a lost connection must not end the loop
                log.warning("reloading DKIM keys failed: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
