"""The tracker's own listener over real sockets: the fast lane answers pixel and redirect
requests inline, keeps pipelined answers in order with the ASGI ones, honours keep-alive and
HTTP/1.0, and serves the same bytes the ASGI app would."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from mta.config import build_config
from tests.fixtures_daemon import free_port
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
