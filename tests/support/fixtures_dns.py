"""pytest plugin: a stub DNS server on 127.0.0.1 and a resolver pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mta.dns import Resolver
from tests.support.dnsstub import StubDns


@pytest.fixture
async def dns_server() -> AsyncIterator[StubDns]:
    server = StubDns()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def resolver(dns_server: StubDns) -> Resolver:
    return Resolver([f"127.0.0.1:{dns_server.port}"], timeout=2)
