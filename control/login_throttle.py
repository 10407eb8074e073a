"""Brute-force protection for logins that an attacker cannot turn against the account's owner.

Locking an account after a few failures lets anyone lock anyone out (OWASP Authentication
Cheat Sheet, "Account Lockout"; OWASP "Blocking Brute Force Attacks"). Failures are counted
instead under three keys, each over a window of `window` seconds:

- the account *from one client address* (`login_max_failures`, 5): guessing one account's
  password from one place stops there, while its owner, elsewhere, logs in as usual;
- the client address across every account (`login_max_failures_per_address`, 20): one host
  spraying a common password over many accounts stops there;
- the account from everywhere (`login_max_failures_per_account`, 100 — NIST SP 800-63B
  §5.2.2's ceiling): the last resort against guessing spread over many addresses. Even then the
  owner is not locked out from an address they logged in from in the last 30 days (OWASP's
  "device cookie" idea with the address as the device), so only logins from new places wait.

An IPv6 client is counted by its /64 network: one host holds a whole /64, and counting its
single addresses would give it 2^64 fresh starts. The counts live in the database, so the limits
hold across daemons. Unknown accounts are counted like real ones: the answers do not tell which
accounts exist.
"""

from __future__ import annotations

import ipaddress

import asyncpg

from control.errors import TooManyRequests
from mta.queries import Queries

SQL = Queries("control")
# Addresses a user logged in from this recently may log in despite the per-account limit.
KNOWN_ADDRESS_AGE = 30 * 86400.0


def client_network(ip: str | None) -> str:
    """What an address is counted as: itself for IPv4, its /64 for IPv6 ("unknown" if none)."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    """Counts failed logins and refuses attempts past the limits with 429 + Retry-After."""

    def __init__(
        self,
        db: asyncpg.Pool,
        *,
        per_account_and_address: int = 5,
        per_address: int = 20,
        per_account: int = 100,
        window: float = 900.0,
    ) -> None:
        self._db = db
        self.per_account_and_address = per_account_and_address
        self.per_address = per_address
        self.per_account = per_account
        self.window = window

    @staticmethod
    def _keys(email: str, ip: str | None) -> tuple[str, str, str]:
        account, network = email.strip().lower(), client_network(ip)
        return f"user-ip:{account} {network}", f"ip:{network}", f"user:{account}"

    async def check(self, email: str, ip: str | None) -> None:
        """Raise TooManyRequests when a login for `email` from `ip` must wait."""
        pair, address, account = keys = self._keys(email, ip)
        rows = await self._db.fetch(SQL["login-failures"], list(keys), self.window)
        counts = {r["key"]: (r["failures"], float(r["remaining"])) for r in rows}
        for key, limit in ((pair, self.per_account_and_address), (address, self.per_address)):
            failures, remaining = counts.get(key, (0, 0.0))
            if failures >= limit:
                raise TooManyRequests("too many failed logins; try again later", remaining)
        failures, remaining = counts.get(account, (0, 0.0))
        if failures >= self.per_account and not await self._known_address(email, ip):
            raise TooManyRequests(
                "too many failed logins for this account; try again later, "
                "or log in from where you logged in before",
                remaining,
            )

    async def failed(self, email: str, ip: str | None) -> None:
        """Count a failed attempt under each of the three keys."""
        await self._db.execute(
            SQL["record-login-failure"], list(self._keys(email, ip)), self.window
        )

    async def succeeded(self, email: str, ip: str | None) -> None:
        """The owner got in from here: their own typos from this place are forgotten. The
        address and account counts stay, or an attacker could reset them with an account of
        their own."""
        await self._db.execute(SQL["clear-login-failures"], self._keys(email, ip)[0])

    async def _known_address(self, email: str, ip: str | None) -> bool:
        network = client_network(ip)
        try:
            ipaddress.ip_network(network)
        except ValueError:
            return False
        return bool(
            await self._db.fetchval(
                SQL["logged-in-from"], email.strip(), network, KNOWN_ADDRESS_AGE
            )
        )
