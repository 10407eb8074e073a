"""Cached principals never outlive a revocation: not in the process that revoked, and not in
another daemon on the same database, which learns of it from PostgreSQL's notification."""

from __future__ import annotations

import asyncio
import time

import httpx

from control.principal import Principal
from control.principal_cache import PrincipalCache
from tests.support.fixtures_control import Control, MakeControl


async def _status_soon(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], want: int
) -> int:
    """The status of GET `path`, polled for up to a second until it is `want`: another
    process learns of a change when the notification arrives, a few milliseconds later."""
    deadline = time.monotonic() + 1.0
    while True:
        status = (await client.get(path, headers=headers)).status_code
        if status == want or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.01)


async def _listening(control: Control) -> None:
    cache = control.app.state.services.auth.principals
    async with asyncio.timeout(5):
        while not cache.listening:
            await asyncio.sleep(0.01)


async def test_logout_ends_access_at_once_in_the_same_process(control: Control) -> None:
    user = await control.user(await control.company())
    c = control.client
    assert (await c.get("/api/auth/me", headers=user.auth)).status_code == 200
    await _listening(control)
    assert (await c.get("/api/auth/me", headers=user.auth)).status_code == 200  # now cached
    assert (await c.post("/api/auth/logout", headers=user.auth)).status_code == 204
    assert (await c.get("/api/auth/me", headers=user.auth)).status_code == 401


async def test_logout_in_one_daemon_ends_access_in_another(make_control: MakeControl) -> None:
    a, b = await make_control(), await make_control()
    user = await a.user(await a.company())
    assert (await b.client.get("/api/auth/me", headers=user.auth)).status_code == 200
    await _listening(b)
    assert (await b.client.get("/api/auth/me", headers=user.auth)).status_code == 200
    assert (await a.client.post("/api/auth/logout", headers=user.auth)).status_code == 204
    assert await _status_soon(b.client, "/api/auth/me", user.auth, 401) == 401


async def test_role_change_by_sql_reaches_a_daemon_that_cached_the_old_role(
    control: Control,
) -> None:
    user = await control.user(await control.company(), "admin")
    c = control.client
    assert (await c.get("/api/users/", headers=user.auth)).status_code == 200
    await _listening(control)
    assert (await c.get("/api/users/", headers=user.auth)).status_code == 200
    # An operator (or another daemon) demotes the user without this process's help; the
    # session stays live, only its permissions shrink.
    await control.pool.execute("UPDATE users SET role = 'analyst' WHERE id = $1", user.id)
    assert await _status_soon(c, "/api/users/", user.auth, 403) == 403


async def test_revoked_api_key_stops_working_in_another_daemon(make_control: MakeControl) -> None:
    a, b = await make_control(), await make_control()
    admin = await a.user(await a.company(), "admin")
    r = await a.client.post(
        "/api/api-keys/", headers=admin.auth, json={"name": "ci", "permissions": ["settings:read"]}
    )
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    headers = {"Authorization": f"Bearer {key}"}
    assert (await b.client.get("/api/api-keys/", headers=headers)).status_code == 200
    await _listening(b)
    assert (await b.client.get("/api/api-keys/", headers=headers)).status_code == 200
    assert (
        await a.client.delete(f"/api/api-keys/{key_id}/", headers=admin.auth)
    ).status_code == 204
    assert await _status_soon(b.client, "/api/api-keys/", headers, 401) == 401


async def test_a_principal_read_before_a_change_is_not_cached_after_it(pool) -> None:
    cache = PrincipalCache(pool)
    try:
        cache.get("token")  # starts listening
        async with asyncio.timeout(5):
            while not cache.listening:
                await asyncio.sleep(0.01)
        principal = Principal(company_id=1, permissions=frozenset())
        generation = cache.generation  # a request starts its database lookup...
        cache.invalidate()  # ...a revocation commits meanwhile...
        cache.put("token", principal, generation)  # ...and the stale answer is not kept
        assert cache.get("token") is None
        cache.put("token", principal, cache.generation, expires=time.time() + 60)
        assert cache.get("token") is principal
        # Never past the credential's own expiry.
        cache.put("old", principal, cache.generation, expires=time.time() - 1)
        assert cache.get("old") is None
    finally:
        await cache.stop()


async def test_without_a_listener_nothing_is_cached(pool) -> None:
    cache = PrincipalCache(pool)
    await cache.stop()  # closed: never listens
    principal = Principal(company_id=1, permissions=frozenset())
    cache.put("token", principal, cache.generation)
    assert cache.get("token") is None


async def test_a_lost_listener_empties_the_cache_and_listens_again(pool) -> None:
    """While nobody listens, revocations could go unseen: the cache must stop answering at
    once and only resume once listening again."""
    cache = PrincipalCache(pool)
    try:
        cache.get("token")
        async with asyncio.timeout(5):
            while not cache.listening:
                await asyncio.sleep(0.01)
        principal = Principal(company_id=1, permissions=frozenset())
        cache.put("token", principal, cache.generation, expires=time.time() + 60)
        assert cache.get("token") is principal
        pid = cache._conn.get_server_pid()
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        async with asyncio.timeout(5):  # it pauses before listening again
            while cache.listening:
                await asyncio.sleep(0.01)
        assert cache.get("token") is None
        async with asyncio.timeout(10):  # back on a new connection after the retry pause
            while not cache.listening:
                await asyncio.sleep(0.05)
        assert cache._conn.get_server_pid() != pid
    finally:
        await cache.stop()
