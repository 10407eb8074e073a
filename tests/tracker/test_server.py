"""The tracker's own listener over real sockets: the fast lane answers pixel and redirect
requests inline, keeps pipelined answers in order with the ASGI ones, honours keep-alive and
HTTP/1.0, and serves the same bytes the ASGI app would."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from mta.config import build_config
from tests.support.fixtures_daemon import free_port
from tracker.server import TrackerServer, build_codec
from tracker.tokens import Token, TokenKind


@pytest.fixture
async def server(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[TrackerServer]:
    port = free_port()
    config = build_config(
        {
            "secret": "server-test",
            "state_dir": str(tmp_path),
            "tracker": {"listen": f"127.0.0.1:{port}", "base_url": f"http://127.0.0.1:{port}"},
        }
    )
    tracker = TrackerServer(config, pool)
    await tracker.start()
    yield tracker
    await tracker.stop(2)


def _tokens(server: TrackerServer) -> tuple[str, str]:
    codec = build_codec(server.config)
    sent = int(time.time()) - 3600
    open_token = codec.make(Token(TokenKind.OPEN, 7, 1, 5, 0, sent))
    click_token = codec.make(Token(TokenKind.CLICK, 7, 1, 5, 0, sent, 0, "https://a.test/x"))
    return open_token, click_token


async def _exchange(server: TrackerServer, raw: bytes, until: bytes, count: int) -> bytes:
    host, port = server.config.tracker.listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    data = b""
    try:
        while data.count(until) < count:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    return data


async def test_pipelined_requests_are_answered_in_order_across_both_lanes(server):
    open_token, click_token = _tokens(server)
    raw = (
        f"GET /o/{open_token} HTTP/1.1\r\nHost: t\r\nUser-Agent: Mozilla/5.0 (X11) Firefox\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
        f"GET /c/{click_token}?utm=1 HTTP/1.1\r\nHost: t\r\n\r\n"
        f"HEAD /c/{click_token} HTTP/1.1\r\nHost: t\r\n\r\n"
        "GET /c/forged HTTP/1.1\r\nHost: t\r\n\r\n"
    ).encode()
    data = await _exchange(server, raw, b"HTTP/1.1 ", 5)
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    assert statuses == [200, 200, 302, 302, 404]
    assert data.index(b"GIF89a") < data.index(b"ok\n") < data.index(b"location: https://a.test/x")
    assert b"date: " in data.lower()
    await server.writer.flush()
    kinds = [r["kind"] for r in await server.writer._db.fetch("SELECT kind FROM tracking_events")]
    assert sorted(kinds) == ["click", "open"]  # HEAD and the forged token recorded nothing


async def test_http_1_0_gets_its_answer_and_the_connection_closed(server):
    open_token, _ = _tokens(server)
    data = await _exchange(server, f"GET /o/{open_token} HTTP/1.0\r\n\r\n".encode(), b";", 1)
    assert data.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in data.lower()
    assert data.endswith(
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01"
        b"\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


async def test_keep_alive_connections_serve_many_requests(server):
    open_token, click_token = _tokens(server)
    base = f"http://{server.config.tracker.listen}"
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(20):
            assert (await client.get(f"/o/{open_token}")).status_code == 200
            assert (await client.get(f"/c/{click_token}")).status_code == 302
        assert (await client.get("/metrics")).status_code == 200
    await server.writer.flush()
    assert await server.writer._db.fetchval("SELECT count(*) FROM tracking_events") == 40


async def test_metrics_show_requests_events_machine_share_buffer_and_writes(server):
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    watched = {
        "recorded": (
            "sendmill_tracker_requests_total",
            {"endpoint": "open", "outcome": "recorded"},
        ),
        "invalid": ("sendmill_tracker_requests_total", {"endpoint": "open", "outcome": "invalid"}),
        "head": ("sendmill_tracker_requests_total", {"endpoint": "click", "outcome": "head"}),
        "human": ("sendmill_tracker_events_total", {"kind": "open", "machine": "false"}),
        "machine": ("sendmill_tracker_events_total", {"kind": "open", "machine": "true"}),
        "apple": (
            "sendmill_tracker_machine_events_total",
            {"kind": "open", "reason": "apple_mail_privacy_protection"},
        ),
        "written": ("sendmill_tracker_events_written_total", {}),
        "writes": ("sendmill_tracker_write_seconds_count", {}),
    }
    before = {key: value(name, **labels) for key, (name, labels) in watched.items()}
    open_token, click_token = _tokens(server)
    base = f"http://{server.config.tracker.listen}"
    async with httpx.AsyncClient(base_url=base) as client:
        await client.get(f"/o/{open_token}", headers={"User-Agent": "Mozilla/5.0 (X11) Firefox"})
        await client.get(f"/o/{open_token}", headers={"User-Agent": "Mozilla/5.0"})
        await client.get("/o/not-a-token")
        await client.head(f"/c/{click_token}")
        deadline = time.monotonic() + 5
        while value(watched["written"][0]) < before["written"] + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the writer publishes counts as it runs
        text = (await client.get("/metrics")).text
    after = {key: value(name, **labels) for key, (name, labels) in watched.items()}
    delta = {key: after[key] - before[key] for key in watched}
    assert delta == {
        "recorded": 2,
        "invalid": 1,
        "head": 1,
        "human": 1,
        "machine": 1,
        "apple": 1,
        "written": 2,
        "writes": delta["writes"],
    }
    assert delta["writes"] >= 1
    assert "sendmill_tracker_buffer_depth" in text and "sendmill_tracker_write_seconds" in text


async def test_sendmill_serve_runs_the_tracker_in_several_processes(
    tmp_path: Path, database_url: str, dns_server, mx_port: int
):
    """`[tracker] processes = 2`: two processes share the port, both write events, /metrics of
    the daemon adds them up, and SIGTERM stops everything with exit status 0."""
    from tests.support.daemon_process import DaemonProcess, write_config
    from tests.support.fixtures_daemon import daemon_settings

    settings = daemon_settings(tmp_path, database_url, dns_server.port, mx_port)
    settings["tracker"]["processes"] = 2
    config = build_config(settings)
    (tmp_path / "state").mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(write_config(tmp_path / "sendmill.toml", settings), tmp_path / "log")
    daemon.start()
    try:
        port = int(config.tracker.listen.rsplit(":", 1)[1])
        await daemon.wait_listening(port)
        codec = build_codec(config)
        token = codec.make(Token(TokenKind.OPEN, 5, 1, 8, 0, int(time.time()) - 3600))

        async def fetch() -> int:  # a new connection each: the kernel spreads them over both
            async with httpx.AsyncClient(base_url=config.tracker.base_url) as client:
                return (await client.get(f"/o/{token}")).status_code

        for _ in range(5):
            assert await asyncio.gather(*(fetch() for _ in range(20))) == [200] * 20
        assert await fetch() == 200
        db = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                count = await db.fetchval("SELECT count(*) FROM tracking_events")
                if count >= 101:
                    break
                await asyncio.sleep(0.1)
            assert count == 101
        finally:
            await db.close()
        async with httpx.AsyncClient(base_url=f"http://{config.http.listen}") as client:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                text = (await client.get("/metrics")).text
                line = 'sendmill_tracker_requests_total{endpoint="open",outcome="recorded"}'
                if f"{line} 101.0" in text:
                    break
                await asyncio.sleep(0.2)
            assert f"{line} 101.0" in text
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0


async def test_a_client_that_pipelines_without_reading_is_not_buffered_without_bound(server):
    open_token, _ = _tokens(server)
    request = f"GET /o/{open_token} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    count = 120_000  # ~12 MB of requests, ~36 MB of answers
    host, port = server.config.tracker.listen.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for us
    sock.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
    state = server.http.server.server_state
    while not state.connections:
        await asyncio.sleep(0.01)
    for connection in state.connections:  # and little on the server's side either
        connection.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
    sending = asyncio.create_task(_send_all(writer, request, count))
    before = state.total_requests
    await asyncio.sleep(2.0)  # the client reads nothing meanwhile
    answered = state.total_requests - before
    buffered = max(c.transport.get_write_buffer_size() for c in state.connections)
    # the server stopped reading once its answers piled up beyond what the kernel holds: its
    # own buffer stays near what one read's worth of requests asks for (unpaused: 13 MB and
    # growing after 2 s here); once the client reads, everything is answered
    assert buffered < 3 * 1024 * 1024, f"{buffered} bytes buffered after {answered} answers"
    status = b"HTTP/1.1 200 OK"
    answers = 0
    tail = b""
    while answers < count:
        chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert chunk
        data = tail + chunk
        answers += data.count(status)
        tail = data[-(len(status) - 1) :]  # a status line may be cut between two reads
    await sending
    writer.close()
    assert answers == count


async def _send_all(writer: asyncio.StreamWriter, request: bytes, count: int) -> None:
    for _ in range(count // 100):
        writer.write(request * 100)
        await writer.drain()
