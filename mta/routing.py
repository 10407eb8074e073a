"""Where mail for a domain goes: a static route from the config, or its MX hosts (RFC 5321 §5).

A `Destination` lists the hosts to try in order and the site key that groups domains sharing
MX hosts into one delivery budget (KumoMTA's "site"). Resolution results are cached by the
resolver; failures are classified so the engine can defer (temporary) or bounce (permanent).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mta.config import Config, Route
from mta.dns import DnsPermanentError, DnsTemporaryError, Resolver
from mta.throttle import site_key


@dataclass(frozen=True, slots=True)
class Hop:
    """One host to try: name (for SNI/logs), port, TLS mode and optional relay AUTH."""

    host: str
    port: int
    tls: str = "opportunistic"
    username: str | None = None
    password: str | None = None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Destination:
    domain: str
    site: str
    hops: tuple[Hop, ...]


class RoutingError(Exception):
    """No destination: `permanent` says bounce (null MX, no such domain) or defer."""

    def __init__(self, reply: str, permanent: bool) -> None:
        super().__init__(reply)
        self.reply = reply
        self.permanent = permanent

    @property
    def code(self) -> int:
        return int(self.reply[:3])


# RFC 7505 §4.2: a null MX means the domain accepts no mail.
REPLY_NULL_MX = "556 5.1.10 Recipient domain does not accept mail (null MX, RFC 7505)"
REPLY_NO_DOMAIN = "550 5.1.2 Recipient domain does not exist (NXDOMAIN)"
REPLY_DNS_TEMPORARY = "451 4.4.3 Temporary DNS failure resolving the recipient domain"


class Router:
    """Resolves recipient domains to destinations, sharing in-flight lookups."""

    def __init__(self, config: Config, resolver: Resolver) -> None:
        self._config = config
        self._resolver = resolver
        self._inflight: dict[str, asyncio.Future[Destination]] = {}

    async def destination(self, domain: str) -> Destination:
        route = self._config.route_for(domain)
        if route is not None:
            return self._static(domain, route)
        pending = self._inflight.get(domain)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Destination] = asyncio.get_running_loop().create_future()
        self._inflight[domain] = future
        try:
            result = await self._resolve(domain)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[domain]

    def _static(self, domain: str, route: Route) -> Destination:
        hop = Hop(route.host, route.port, route.tls, route.username, route.password)
        return Destination(domain, f"route:{route.domain}", (hop,))

    async def _resolve(self, domain: str) -> Destination:
        try:
            mx = await self._resolver.mx(domain)
        except DnsPermanentError:
            raise RoutingError(REPLY_NO_DOMAIN, permanent=True) from None
        except DnsTemporaryError:
            raise RoutingError(REPLY_DNS_TEMPORARY, permanent=False) from None
        if mx.null_mx:
            raise RoutingError(REPLY_NULL_MX, permanent=True)
        port = self._config.delivery.port
        hops = tuple(Hop(h.name, port) for h in mx.hosts)
        if not hops:
            raise RoutingError(REPLY_NO_DOMAIN, permanent=True)
        return Destination(domain, site_key([h.name for h in mx.hosts]), hops)
