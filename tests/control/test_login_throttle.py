"""Brute-force protection on login that an attacker cannot turn into a lockout of the owner:
failures count per account from one address, per address, and (far higher) per account.
Clients connect from distinct loopback addresses (127.0.0.x), so the server sees each as
its own client address."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from control.login_throttle import client_network
from tests.support.fixtures_control import PASSWORD, Control, MakeControl


@contextlib.asynccontextmanager
async def _from(control: Control, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=control.url, transport=transport, timeout=10) as c:
        yield c


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


def _throttled(r: httpx.Response) -> bool:
    """429 in the API's one error shape, with a Retry-After within the 10-minute window."""
    assert set(r.json()) == {"error_code", "message", "details"}, r.text
    return (
        r.status_code == 429
        and r.json()["error_code"] == "rate_limited"
        and 500 < int(r.headers["retry-after"]) <= 600
    )


async def test_an_attacker_cannot_lock_the_owner_out(make_control: MakeControl) -> None:
    control = await make_control(login_max_failures=3, login_lockout="10m")
    owner = await control.user(await control.company(), login=False)
    async with _from(control, "127.0.0.2") as attacker, _from(control, "127.0.0.3") as home:
        for _ in range(3):
            assert (await _login(attacker, owner.email, "guess")).status_code == 401
        # Guessing from this address has stopped: even the right password waits.
        assert _throttled(await _login(attacker, owner.email, "guess"))
        assert _throttled(await _login(attacker, owner.email, PASSWORD))
        # The owner, from elsewhere, mistypes once and logs in.
        assert (await _login(home, owner.email, "typo")).status_code == 401
        r = await _login(home, owner.email, PASSWORD)
        assert r.status_code == 200 and r.json()["access_token"]


async def test_password_spraying_from_one_address_is_throttled(make_control: MakeControl) -> None:
    control = await make_control(
        login_max_failures=3, login_max_failures_per_address=4, login_lockout="10m"
    )
    company = await control.company()
    users = [await control.user(company, login=False) for _ in range(5)]
    async with _from(control, "127.0.0.4") as sprayer, _from(control, "127.0.0.5") as office:
        for user in users[:4]:  # one common password tried on each account
            assert (await _login(sprayer, user.email, "Summer2024!")).status_code == 401
        assert _throttled(await _login(sprayer, users[4].email, "Summer2024!"))
        assert _throttled(await _login(sprayer, "nobody@nowhere.test", "Summer2024!"))
        # The accounts themselves are not locked.
        assert (await _login(office, users[4].email, PASSWORD)).status_code == 200
        assert (await _login(office, users[0].email, PASSWORD)).status_code == 200


async def test_guessing_spread_over_many_addresses_spares_the_owners_address(
    make_control: MakeControl,
) -> None:
    control = await make_control(
        login_max_failures=2, login_max_failures_per_account=4, login_lockout="10m"
    )
    owner = await control.user(await control.company(), login=False)
    async with _from(control, "127.0.0.6") as home:
        assert (await _login(home, owner.email, PASSWORD)).status_code == 200
    for address in ("127.0.0.7", "127.0.0.8"):
        async with _from(control, address) as bot:
            for _ in range(2):
                assert (await _login(bot, owner.email, "guess")).status_code == 401
    # The account has had its fill of failures: a new address waits, even with the password...
    async with _from(control, "127.0.0.9") as new_place:
        r = await _login(new_place, owner.email, PASSWORD)
        assert _throttled(r) and "this account" in r.json()["message"]
    # ...but the address the owner logged in from before still gets in.
    async with _from(control, "127.0.0.6") as home:
        assert (await _login(home, owner.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # a host owns its whole /64
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4 through a dual-stack socket
        (None, "unknown"),
    ],
)
def test_client_addresses_are_counted_by_network(ip: str | None, counted_as: str) -> None:
    assert client_network(ip) == counted_as
