"""The control API under concurrent callers sharing one connection pool (size 10 in tests):
requests that use the pool themselves must not wait on connections their own pipeline holds."""

from __future__ import annotations

import asyncio

from tests.fixtures_control import PASSWORD, Control


async def test_more_concurrent_logins_than_pool_connections_all_succeed(control: Control) -> None:
    company = await control.company()
    users = [await control.user(company, "analyst", login=False) for _ in range(30)]

    async def login(email: str) -> int:
        r = await control.client.post(
            "/api/auth/login", json={"email": email, "password": PASSWORD}
        )
        return r.status_code

    async with asyncio.timeout(20):
        statuses = await asyncio.gather(*(login(u.email) for u in users))
    assert statuses == [200] * len(users)
