"""pytest plugin: start receiving MX servers on 127.0.0.x for a test; stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.mx_server import ReceivingServer


@pytest.fixture
async def mx_factory() -> AsyncIterator[Callable[..., Awaitable[ReceivingServer]]]:
    servers: list[ReceivingServer] = []

    async def start(host: str = "127.0.0.1", port: int = 0, **options: Any) -> ReceivingServer:
        server = ReceivingServer()
        await server.start(host, port, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
