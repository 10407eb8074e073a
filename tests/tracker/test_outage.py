"""The tracker through a real PostgreSQL restart: a PostgreSQL of the test's own (the shared
one serves every other test) is stopped while the tracker serves pixels and redirects, then
started again. Hits keep their fast answers, every event is written exactly once afterwards,
and nothing is counted as dropped."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path

import httpx

from mta import database, tenants
from mta.config import build_config
from tests.support.fixtures_daemon import free_port
from tests.support.own_postgres import OwnPostgres
from tracker.server import TrackerServer, build_codec
from tracker.tokens import Token, TokenKind

HITS = 100  # opens and as many clicks while PostgreSQL is down
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def _dropped(metrics_text: str) -> float:
    match = re.search(r"^sendmill_tracker_events_dropped_total (\S+)$", metrics_text, re.M)
    assert match, "the drop counter is exported"
    return float(match.group(1))


async def test_events_survive_a_postgresql_restart_written_exactly_once(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    db = await database.connect(own_postgres.url, size=3)
    port = free_port()
    config = build_config(
        {
            "secret": "outage-test",
            "state_dir": str(tmp_path / "state"),
            "tracker": {
                "listen": f"127.0.0.1:{port}",
                "base_url": f"http://127.0.0.1:{port}",
                "buffer_size": 10_000,
                "batch_size": 50,
            },
        }
    )
    tracker = TrackerServer(config, db)
    await tracker.start()
    base = config.tracker.base_url
    codec = build_codec(config)
    try:
        company = await tenants.ensure_company(db, "acme")
        sent = int(time.time()) - 3600

        def opened(recipient: int) -> str:
            return f"{base}/o/{codec.make(Token(TokenKind.OPEN, recipient, company, 7, 0, sent))}"

        def clicked(recipient: int) -> str:
            url = f"https://shop.example.com/item/{recipient}"
            token = Token(TokenKind.CLICK, recipient, company, 7, 0, sent, 0, url)
            return f"{base}/c/{codec.make(token)}"

        async with httpx.AsyncClient(headers={"User-Agent": BROWSER}, timeout=5) as client:
            dropped_before = _dropped((await client.get(f"{base}/metrics")).text)
            await own_postgres.stop()
            assert (await client.get(f"{base}/healthz")).status_code == 200

            seconds = []
            for recipient in range(1, HITS + 1):
                started = time.perf_counter()
                pixel = await client.get(opened(recipient))
                redirect = await client.get(clicked(recipient))
                seconds.append((time.perf_counter() - started) / 2)
                assert pixel.status_code == 200 and pixel.content[:6] == b"GIF89a"
                assert redirect.status_code == 302
                assert redirect.headers["location"] == f"https://shop.example.com/item/{recipient}"
            # answered from memory: no request waits for the database that is gone
            assert statistics.median(seconds) < 0.05 and max(seconds) < 1.0, seconds

            await asyncio.sleep(0.5)  # the writer tries, fails and keeps the events
            assert tracker.writer.depth == 2 * HITS
            assert tracker.writer.written == 0

            await own_postgres.start()
            deadline = time.monotonic() + 20
            while tracker.writer.depth and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert tracker.writer.depth == 0
            dropped_after = _dropped((await client.get(f"{base}/metrics")).text)
    finally:
        await tracker.stop(5)

    rows = await db.fetch(
        "SELECT kind::text, recipient_id, count(*) AS n FROM tracking_events"
        " GROUP BY kind, recipient_id"
    )
    await db.close()
    assert sorted((r["kind"], r["recipient_id"]) for r in rows) == sorted(
        [("click", n) for n in range(1, HITS + 1)] + [("open", n) for n in range(1, HITS + 1)]
    )
    assert {r["n"] for r in rows} == {1}  # exactly once each
    assert tracker.writer.dropped == 0 and dropped_after == dropped_before
