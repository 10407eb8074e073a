"""Async DNS for the mail path: MX (RFC 5321 §5.1, RFC 7505 null MX), A/AAAA and TXT lookups
through dnspython, against the configured resolvers, with a TTL-bounded in-memory cache.

Failures are classified: NXDOMAIN is permanent (the domain does not exist: bounce), SERVFAIL,
timeouts and network errors are temporary (defer and retry).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import idna

NEGATIVE_TTL = 60.0  # how long "no such domain" / "no records" is remembered


class DnsError(Exception):
    """A lookup failed."""


class DnsTemporaryError(DnsError):
    """SERVFAIL, timeout or network error: try again later."""


class DnsPermanentError(DnsError):
    """NXDOMAIN or no usable answer."""


@dataclass(frozen=True, slots=True)
class MxHost:
    preference: int
    name: str


@dataclass(frozen=True, slots=True)
class MxResult:
    domain: str
    hosts: tuple[MxHost, ...] = ()
    null_mx: bool = False
    implicit: bool = False  # no MX records: the domain itself (A/AAAA fallback)


def to_ascii(domain: str) -> str:
    """Lower-case, no trailing dot, IDNA-encoded the way mail software does today: IDNA 2008
    with UTS #46 mapping, non-transitional (`straße.de` is `xn--strae-oqa.de`, not the
    `strasse.de` of Python's IDNA 2003 codec). A name IDNA refuses is returned lower-cased."""
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():  # the common case, and A-labels (xn--) as they are
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


def _nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
        port = int(port_text)
    else:
        host, port = spec, 53
    return dns.nameserver.Do53Nameserver(host, port)


class Resolver:
    """MX, address and TXT lookups with a cache bounded by `cache_ttl_max`."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        timeout: float = 5.0,
        cache_ttl_max: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        if nameservers:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [_nameserver(n) for n in nameservers]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._ttl_max = cache_ttl_max
        self._cache: dict[tuple[str, str], tuple[float, object]] = {}
        self._rng = rng or random.Random()

    async def _query(self, name: str, rdtype: str) -> list:
        """Records of `rdtype` at `name`; [] for NODATA; DnsPermanentError for NXDOMAIN."""
        key = (name, rdtype)
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            if isinstance(hit[1], DnsPermanentError):
                raise hit[1]
            return hit[1]  # type: ignore[return-value]
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            error = DnsPermanentError(f"{name}: no such domain (NXDOMAIN)")
            self._cache[key] = (time.monotonic() + NEGATIVE_TTL, error)
            raise error from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc.__class__.__name__}") from None
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc}") from None
        records = list(answer.rrset) if answer.rrset is not None else []
        ttl = min(answer.rrset.ttl, self._ttl_max) if answer.rrset is not None else NEGATIVE_TTL
        self._cache[key] = (time.monotonic() + ttl, records)
        return records

    async def mx(self, domain: str) -> MxResult:
        """The MX hosts of `domain` in preference order (equal preferences shuffled)."""
        domain = to_ascii(domain)
        records = await self._query(domain, "MX")
        if not records:
            # RFC 5321 §5.1: no MX, the domain itself is the implicit MX if it has an address.
            await self.addresses(domain)
            return MxResult(domain, (MxHost(0, domain),), implicit=True)
        if len(records) == 1 and records[0].exchange.to_text() == ".":
            return MxResult(domain, (), null_mx=True)
        hosts = [
            MxHost(r.preference, r.exchange.to_text().rstrip(".").lower())
            for r in records
            if r.exchange.to_text() != "."
        ]
        self._rng.shuffle(hosts)
        hosts.sort(key=lambda h: h.preference)
        return MxResult(domain, tuple(hosts))

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of `host` (an IP literal is returned as is)."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        host = to_ascii(host)
        found: list[str] = []
        temporary: DnsTemporaryError | None = None
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.address for r in await self._query(host, rdtype)]
            except DnsTemporaryError as exc:
                temporary = exc
        if found:
            return found
        if temporary is not None:
            raise temporary
        raise DnsPermanentError(f"{host}: no A or AAAA records")

    async def cname(self, name: str) -> str | None:
        """The canonical name `name` is an alias of, or None when it is no alias."""
        records = await self._query(to_ascii(name), "CNAME")
        return records[0].target.to_text().rstrip(".").lower() if records else None

    async def txt(self, name: str) -> list[str]:
        """TXT records at `name`, each with its character-strings joined."""
        records = await self._query(to_ascii(name), "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in records]
