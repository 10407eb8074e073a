"""Serving HTTP from several processes on one address (SO_REUSEPORT): the kernel spreads
incoming connections over them. The tracker and the control API scale across cores this way:
each process runs a `ReuseportServer`, started in the daemon or in a process of its own
(mta/service_process.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mta.config import parse_hostport

if TYPE_CHECKING:
    import uvicorn

BACKLOG = 4096


def listening_socket(address: str, default_port: int, key: str) -> socket.socket:
    """A non-blocking socket listening on `address` ("host:port"; `key` names the config key
    in errors), shareable with other processes binding the same address."""
    host, port = parse_hostport(address, default_port, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def signal_free_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that leaves SIGTERM and SIGHUP to the daemon, which owns them."""
    import uvicorn

    class SignalFreeServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return SignalFreeServer(config)


class ReuseportServer:
    """An ASGI app under uvicorn on a SO_REUSEPORT socket, in the running event loop."""

    def __init__(self, app: Any, name: str, http: type | str = "auto") -> None:
        self.app = app
        self.name = name
        self.http = http
        self.server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, address: str, default_port: int, key: str) -> None:
        """Listen on `address`; returns once uvicorn serves, or raises why it could not."""
        import uvicorn

        sock = listening_socket(address, default_port, key)
        server = signal_free_server(
            uvicorn.Config(
                self.app,
                log_config=None,
                access_log=False,
                lifespan="off",
                http=self.http,
                backlog=BACKLOG,
                timeout_keep_alive=30,
            )
        )
        self.server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started and not self._task.done():  # noqa: ASYNC110 (uvicorn's flag)
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, finish what is in flight (for up to `grace` seconds)."""
        if self.server is not None:
            self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, grace)
