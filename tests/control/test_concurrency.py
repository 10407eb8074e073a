"""The control API under concurrent callers sharing one connection pool (size 10 in tests):
requests that use the pool themselves must not wait on connections their own pipeline holds,
and concurrent campaign creates in one company do not wait for one another's code number."""

from __future__ import annotations

import asyncio

from mta.queries import Queries
from tests.support.fixtures_control import PASSWORD, Control, MakeControl, campaign_body

SQL = Queries("control")


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


async def test_a_campaign_create_in_progress_does_not_hold_up_the_next(control: Control) -> None:
    admin = await control.user(await control.company())
    ids = await control.fixtures(admin)  # the company's first generated code (EC-00001)
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    # A create that has taken its number and not committed yet (slow, or about to fail).
    async with control.pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        try:
            taken = await slow.fetchrow(SQL["next-campaign-code"], admin.company.id)
            assert taken["campaign_seq"] == 2
            async with asyncio.timeout(5):  # a counter row lock made this wait for the commit
                r = await control.client.post(
                    "/api/email-campaigns/", headers=admin.auth, json=body
                )
            assert r.status_code == 201 and r.json()["campaign_code"] == "EC-00003"
        finally:
            await transaction.rollback()
    # The rolled-back number is a gap, never handed out again.
    r = await control.client.post("/api/email-campaigns/", headers=admin.auth, json=body)
    assert r.json()["campaign_code"] == "EC-00004"


async def test_a_campaign_create_does_not_wait_for_its_templates_row(control: Control) -> None:
    """Creates sharing a template, or a template edit in progress, do not hold each other up:
    a create writes nothing to its template's row."""
    admin = await control.user(await control.company())
    ids = await control.fixtures(admin)
    body = campaign_body(ids["template"], ids["list"], ids["sender"])
    async with control.pool.acquire() as editing:
        transaction = editing.transaction()
        await transaction.start()
        try:  # the row lock an UPDATE of the template (or of a counter on it) holds to commit
            await editing.execute(
                "SELECT 1 FROM email_templates WHERE id = $1 FOR NO KEY UPDATE", ids["template"]
            )
            async with asyncio.timeout(5):
                r = await control.client.post(
                    "/api/email-campaigns/", headers=admin.auth, json=body
                )
            assert r.status_code == 201, r.text
        finally:
            await transaction.rollback()


async def test_concurrent_creates_get_distinct_codes(make_control: MakeControl) -> None:
    control = await make_control(rate_limit="100000/m", rate_burst=1000)
    admin = await control.user(await control.company())
    # Codes continue from the number the company counter had reached before sequences.
    await control.pool.execute(
        "INSERT INTO company_profiles (company_id, campaign_seq) VALUES ($1, 41) "
        "ON CONFLICT (company_id) DO UPDATE SET campaign_seq = 41",
        admin.company.id,
    )
    ids = await control.fixtures(admin)
    body = campaign_body(ids["template"], ids["list"], ids["sender"])

    async def create() -> str:
        r = await control.client.post("/api/email-campaigns/", headers=admin.auth, json=body)
        assert r.status_code == 201, r.text
        return r.json()["campaign_code"]

    async with asyncio.timeout(30):
        codes = await asyncio.gather(*(create() for _ in range(40)))
    assert sorted(codes) == [f"EC-{n:05d}" for n in range(43, 83)]
