"""The outbound SMTP client against real receiving servers over real sockets."""

import asyncio
import time

import pytest

from mta.smtp_client import ConnectFailed, Envelope, SessionClosed, SmtpConnection
from tests.support.fixtures_daemon import free_port

DATA = b"From: a@example.test\r\nSubject: t\r\n\r\n.starts with a dot\r\nbody\r\n..two\r\n"


async def _open(port: int, **kw) -> SmtpConnection:
    return await SmtpConnection.open("127.0.0.1", port, helo_name="client.test", **kw)


async def test_several_messages_travel_over_one_tls_connection(mx_factory) -> None:
    mx = await mx_factory()
    conn = await _open(mx.port)
    assert conn.tls_active
    for i in range(5):
        result = await conn.send(Envelope("s@example.test", [f"r{i}@dest.test"], DATA))
        assert result.accepted == [f"r{i}@dest.test"]
    await conn.close()
    assert mx.connections == 1 and len(mx.messages) == 5
    assert all(m.tls for m in mx.messages)
    assert mx.messages[0].data == DATA  # dot-stuffing undone by the server: byte-identical


async def test_required_tls_fails_when_starttls_is_not_offered(mx_factory) -> None:
    mx = await mx_factory(starttls=False)
    with pytest.raises(ConnectFailed, match="STARTTLS"):
        await _open(mx.port, tls="required")
    conn = await _open(mx.port)  # opportunistic: plaintext
    assert not conn.tls_active
    await conn.close()


async def test_per_recipient_replies_and_data_deferral(mx_factory) -> None:
    mx = await mx_factory()
    mx.fail_rcpt["gone@dest.test"] = (550, "5.1.1 no such user")
    conn = await _open(mx.port)
    result = await conn.send(Envelope("s@example.test", ["gone@dest.test", "ok@dest.test"], DATA))
    assert [(r.recipient, r.code) for r in result.replies] == [
        ("gone@dest.test", 550),
        ("ok@dest.test", 250),
    ]
    mx.fail_data_next(451, "4.3.0 later")
    result = await conn.send(Envelope("s@example.test", ["ok@dest.test"], DATA))
    assert result.replies[0].code == 451 and result.replies[0].is_temporary
    result = await conn.send(Envelope("s@example.test", ["ok@dest.test"], DATA))
    assert result.accepted == ["ok@dest.test"]  # the session stayed usable
    await conn.close()


async def test_an_8bit_message_to_a_server_without_8bitmime_is_refused_without_sending(
    mx_factory,
) -> None:
    mx = await mx_factory()
    conn = await _open(mx.port)
    conn.extensions.pop("8bitmime", None)
    result = await conn.send(Envelope("s@example.test", ["r@dest.test"], DATA, eight_bit=True))
    assert result.replies[0].text.startswith("554 5.6.3")
    assert mx.messages == []
    await conn.close()


async def test_a_closed_port_fails_fast(mx_factory) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectFailed):
        await _open(free_port(), connect_timeout=2)
    assert time.monotonic() - started < 1


async def test_a_server_that_hangs_up_gives_session_closed(mx_factory) -> None:
    mx = await mx_factory()
    mx.close_after = 1
    conn = await _open(mx.port)
    await conn.send(Envelope("s@example.test", ["r@dest.test"], DATA))
    await asyncio.sleep(0.05)
    with pytest.raises(SessionClosed):
        await conn.send(Envelope("s@example.test", ["r@dest.test"], DATA))


async def test_a_server_that_never_greets_times_out() -> None:
    async def silent(reader, writer):
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(SessionClosed):
        await _open(port, greeting_timeout=0.3)
    server.close()
