"""MX resolution against a real (stub) DNS server over real sockets."""

import random

import pytest

from mta.dns import DnsPermanentError, DnsTemporaryError, Resolver
from tests.support.dnsstub import StubDns


async def test_mx_hosts_come_in_preference_order(dns_server: StubDns) -> None:
    dns_server.add_mx("dest.test", [(20, "mx2.dest.test"), (10, "mx1.dest.test")])
    resolver = Resolver([f"127.0.0.1:{dns_server.port}"], rng=random.Random(1))
    result = await resolver.mx("Dest.Test.")
    assert [h.name for h in result.hosts] == ["mx1.dest.test", "mx2.dest.test"]
    assert not result.null_mx and not result.implicit


async def test_a_domain_without_mx_falls_back_to_its_address(
    dns_server: StubDns, resolver: Resolver
) -> None:
    dns_server.add_a("plain.test", "127.0.0.9")
    result = await resolver.mx("plain.test")
    assert result.implicit and [h.name for h in result.hosts] == ["plain.test"]
    assert await resolver.addresses("plain.test") == ["127.0.0.9"]


async def test_null_mx_is_recognised(dns_server: StubDns, resolver: Resolver) -> None:
    dns_server.add_mx("nomail.test", [(0, ".")])
    assert (await resolver.mx("nomail.test")).null_mx


async def test_nxdomain_is_permanent_and_servfail_temporary(
    dns_server: StubDns, resolver: Resolver
) -> None:
    with pytest.raises(DnsPermanentError):
        await resolver.mx("nowhere.test")
    dns_server.set_servfail("broken.test")
    with pytest.raises(DnsTemporaryError):
        await resolver.mx("broken.test")


async def test_answers_are_cached(dns_server: StubDns, resolver: Resolver) -> None:
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    await resolver.mx("dest.test")
    await resolver.mx("dest.test")
    assert dns_server.queries.count(("dest.test", "MX")) == 1


async def test_long_txt_records_are_reassembled_over_tcp(
    dns_server: StubDns, resolver: Resolver
) -> None:
    text = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server.add_txt("sel._domainkey.dest.test", text)
    assert await resolver.txt("sel._domainkey.dest.test") == [text]


async def test_ip_literals_and_unicode_domains(dns_server: StubDns, resolver: Resolver) -> None:
    assert await resolver.addresses("[127.0.0.5]") == ["127.0.0.5"]
    dns_server.add_mx("xn--bcher-kva.test", [(10, "mx.example.test")])
    result = await resolver.mx("bücher.test")
    assert result.hosts[0].name == "mx.example.test"


def test_domains_are_encoded_with_idna_2008_as_mail_software_does() -> None:
    from mta.dns import to_ascii

    assert to_ascii("Straße.DE.") == "xn--strae-oqa.de"  # IDNA 2003 would say strasse.de
    assert to_ascii("BÜCHER.test") == "xn--bcher-kva.test"
    assert to_ascii("xn--bcher-kva.test") == "xn--bcher-kva.test"
    assert to_ascii("Example.COM") == "example.com"
