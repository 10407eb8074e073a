"""A receiving MX server for tests: aiosmtpd's protocol served inside the test's event loop,
recording every message and programmable to defer, refuse or hang up."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from mta.tls import ensure_self_signed

_CERT: tuple[str, str] | None = None


def test_certificate() -> tuple[str, str]:
    """A throwaway self-signed certificate, made once per test process."""
    global _CERT
    if _CERT is None:
        folder = Path(tempfile.mkdtemp(prefix="mxcert"))
        ensure_self_signed(folder / "cert.pem", folder / "key.pem", "mx.test")
        _CERT = (str(folder / "cert.pem"), str(folder / "key.pem"))
    return _CERT


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    peer: str


class _Handler:
    def __init__(self, server: ReceivingServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        failure = self.server.fail_rcpt.get(address.lower())
        if failure is not None:
            return f"{failure[0]} {failure[1]}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        server = self.server
        if server.accept_delay:
            await asyncio.sleep(server.accept_delay)
        if server._data_failures:
            code, text, left = server._data_failures
            server._data_failures = (code, text, left - 1) if left > 1 else None
            return f"{code} {text}"
        server.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or b"",
                session.ssl is not None,
                str(session.peer),
            )
        )
        count = getattr(session, "sendmill_count", 0) + 1
        session.sendmill_count = count  # type: ignore[attr-defined]
        if server.close_after is not None and count >= server.close_after:
            smtp._handler_coroutine = None
            asyncio.get_running_loop().call_soon(smtp.transport.close)
        return "250 2.0.0 OK"


class ReceivingServer:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.connections = 0
        self.peak_connections = 0
        self._open = 0
        self.fail_rcpt: dict[str, tuple[int, str]] = {}
        self.close_after: int | None = None
        self.accept_delay = 0.0
        self._data_failures: tuple[int, str, int] | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    def fail_data_next(self, code: int, text: str, times: int = 1) -> None:
        self._data_failures = (code, text, times)

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, starttls: bool = True) -> int:
        context = None
        if starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*test_certificate())
        handler = _Handler(self)
        server = self

        class Protocol(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                if not getattr(self, "_counted", False):
                    self._counted = True
                    server.connections += 1
                    server._open += 1
                    server.peak_connections = max(server.peak_connections, server._open)
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                if getattr(self, "_counted", False) and not getattr(self, "_lost", False):
                    self._lost = True
                    server._open -= 1
                super().connection_lost(exc)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Protocol(
                handler,
                hostname="mx.test",
                tls_context=context,
                enable_SMTPUTF8=True,
                decode_data=False,
            ),
            host,
            port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
