"""bench/api: the control API under the blueprint's load and stress tests.

Seeds 10 companies with 10,000 campaigns and 100,000 contacts (and templates, lists, sender
profiles, 50 users each), serves the control API in its own process (uvicorn + uvloop, as the
daemon does), then drives it with simulated users, each logged in as a different user, issuing a
mix of requests — 50% list (filtered by status or type, paginated), 25% get, 15% create,
10% update — with one second of think time:

1. 120 users for 60 s (the blueprint's load test),
2. 500 users for 60 s (its stress test),
3. a closed loop: 64 concurrent clients, no think time, for the maximum rate.

Prints p50/p95/p99 latency and errors for each. The last line is one JSON object:
{"p95_ms_120", "p99_ms_120", "p95_ms_500", "errors_500", "max_rps"}.

Usage: .venv/bin/python bench/api.py [--duration S] [--closed-duration S] [--database-url URL]
Without --database-url (or SENDMILL_TEST_DATABASE_URL) an embedded PostgreSQL is started in
bench/out/api. Password hashing is set to its cheapest for the 500 logins (not measured);
the request rate limit is raised so the closed loop measures the server, not the limiter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "api"
COMPANIES = 10
CAMPAIGNS_PER_COMPANY = 1000
CONTACTS_PER_COMPANY = 10_000
USERS_PER_COMPANY = 50
PASSWORD = "bench password 123"
STATUSES = ("draft", "scheduled", "sent", "completed", "paused", "cancelled")
TYPES = ("regular", "newsletter", "promotional", "announcement")
HTML = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
    "<style>@media (max-width:600px){.c{width:100%}}</style></head>"
    '<body><div class="c"><p>Hello {{first_name}}</p>'
    '<a href="{{unsubscribe_url}}">Unsubscribe</a></div></body></html>'
)

SERVER = r"""
import asyncio, sys, uvicorn, uvloop
from mta import database
from mta.config import build_config
from control.app import create_app

async def main(url, port):
    config = build_config({"secret": "bench", "control": {
        "listen": f"127.0.0.1:{port}", "rate_limit": "1000000/m", "rate_burst": 100000,
        "password_time_cost": 1, "password_memory_kib": 1024}})
    pool = await database.connect(url, 20)
    app = create_app(pool, config, b"bench")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off", backlog=2048))
    await server.serve()

uvloop.install()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def database_url(given: str | None) -> str:
    from mta import database

    base = given or os.environ.get("SENDMILL_TEST_DATABASE_URL")
    if base is None:
        OUT.mkdir(parents=True, exist_ok=True)
        base = await asyncio.to_thread(database.embedded_url, OUT)
    conn = await asyncpg.connect(base)
    try:
        await conn.execute("DROP DATABASE IF EXISTS sendmill_bench_api WITH (FORCE)")
        await conn.execute("CREATE DATABASE sendmill_bench_api")
    finally:
        await conn.close()
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(base)._replace(path="/sendmill_bench_api"))


async def seed(url: str) -> list[tuple[int, str]]:
    """Companies, users, templates, lists, senders, contacts and campaigns; returns
    (company id, user email) for every user."""
    from control.auth import hash_password, password_hasher
    from mta import database

    pool = await database.connect(url, 4)
    async with pool.acquire() as conn:
        await database.migrate(conn)
    password_hash = await hash_password(PASSWORD, password_hasher(1, 1024))
    users: list[tuple[int, str]] = []
    started = time.perf_counter()
    async with pool.acquire() as conn:
        for n in range(COMPANIES):
            cid = await conn.fetchval(
                "INSERT INTO companies (name) VALUES ($1) RETURNING id", f"bench{n}"
            )
            await conn.execute(
                "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)",
                cid,
                f"bench{n}.example",
            )
            await conn.execute(
                "INSERT INTO company_profiles (company_id, campaign_seq) VALUES ($1, $2)",
                cid,
                CAMPAIGNS_PER_COMPANY,
            )
            emails = [f"user{i}@bench{n}.example" for i in range(USERS_PER_COMPANY)]
            await conn.executemany(
                "INSERT INTO users (company_id, email, role, password_hash)"
                " VALUES ($1, $2, $3, $4)",
                [
                    (cid, e, "marketing_manager" if i % 2 else "email_specialist", password_hash)
                    for i, e in enumerate(emails)
                ],
            )
            users += [(cid, e) for e in emails]
            template = await conn.fetchval(
                "INSERT INTO email_templates (company_id, template_name, template_code,"
                " template_type, category, html_content) VALUES ($1, 'Main', 'MAIN',"
                " 'newsletter', 'marketing', $2) RETURNING id",
                cid,
                HTML,
            )
            lst = await conn.fetchval(
                "INSERT INTO email_lists (company_id, list_name, list_code, list_type,"
                " source_type) VALUES ($1, 'All', 'ALL', 'static', 'import') RETURNING id",
                cid,
            )
            await conn.execute(
                "INSERT INTO sender_profiles (company_id, profile_name, from_address)"
                " VALUES ($1, 'News', $2)",
                cid,
                f"news@bench{n}.example",
            )
            await conn.execute(
                "INSERT INTO contacts (company_id, email, first_name, consent_source)"
                " SELECT $1, 'c' || g || '@example.net', 'C' || g, 'import'"
                " FROM generate_series(1, $2) g",
                cid,
                CONTACTS_PER_COMPANY,
            )
            await conn.execute(
                "INSERT INTO list_members (company_id, list_id, contact_id)"
                " SELECT $1, $2, id FROM contacts WHERE company_id = $1",
                cid,
                lst,
            )
            await conn.execute(
                "INSERT INTO email_campaigns (company_id, campaign_name, campaign_code,"
                " subject_line, campaign_type, email_template_id, target_list_id,"
                " campaign_status, scheduled_send_date)"
                " SELECT $1, 'Campaign ' || g, 'EC-' || lpad(g::text, 5, '0'), 'Subject ' || g,"
                " ($4::text[])[1 + g % 4], $2, $3, ($5::text[])[1 + g % 6],"
                " now() + (g || ' hours')::interval"
                " FROM generate_series(1, $6) g",
                cid,
                template,
                lst,
                list(TYPES),
                list(STATUSES),
                CAMPAIGNS_PER_COMPANY,
            )
        await conn.execute("ANALYZE")
    await pool.close()
    print(
        f"seeded {COMPANIES} companies, {COMPANIES * CAMPAIGNS_PER_COMPANY:,} campaigns, "
        f"{COMPANIES * CONTACTS_PER_COMPANY:,} contacts, {len(users)} users "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return users


class Simulated:
    """One logged-in user and what it has seen (ids to get and update)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, email: str) -> None:
        self.session = session
        self.base = base
        self.email = email
        self.headers: dict[str, str] = {}
        self.ids: list[int] = []
        self.refs: dict[str, int] = {}

    async def login(self) -> None:
        async with self.session.post(
            f"{self.base}/api/auth/login", json={"email": self.email, "password": PASSWORD}
        ) as r:
            assert r.status == 200, await r.text()
            self.headers = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        page = await self._get("/api/email-campaigns/?page_size=50")
        self.ids = [c["id"] for c in page["results"]]
        first = page["results"][0]
        self.refs = {"template": first["email_template_id"], "list": first["target_list_id"]}

    async def _get(self, path: str) -> dict:
        async with self.session.get(self.base + path, headers=self.headers) as r:
            return await r.json()

    async def one(self, rng: random.Random) -> int:
        """One request of the mix; returns the HTTP status."""
        roll = rng.random()
        if roll < 0.50:
            if rng.random() < 0.5:
                query = f"campaign_status={rng.choice(STATUSES)}"
            else:
                query = f"campaign_type={rng.choice(TYPES)}"
            path = f"/api/email-campaigns/?{query}&page={rng.randint(1, 5)}&page_size=25"
            method, body = "GET", None
        elif roll < 0.75:
            method, path, body = "GET", f"/api/email-campaigns/{rng.choice(self.ids)}/", None
        elif roll < 0.90:
            method, path = "POST", "/api/email-campaigns/"
            body = {
                "campaign_name": "Bench",
                "subject_line": "Hello from the bench",
                "campaign_type": "newsletter",
                "email_template_id": self.refs["template"],
                "target_list_id": self.refs["list"],
            }
        else:
            method, path = "PUT", f"/api/email-campaigns/{rng.choice(self.ids)}/"
            body = {"campaign_name": f"Renamed {rng.randint(1, 10**6)}"}
        async with self.session.request(
            method, self.base + path, json=body, headers=self.headers
        ) as r:
            await r.read()
            return r.status


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_phase(
    users: list[Simulated], duration: float, think: float, name: str
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + duration

    async def loop(user: Simulated, seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        if think:
            await asyncio.sleep(rng.random() * think)  # spread the first requests
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status = await user.one(rng)
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            # Edits of a paused/sending campaign answer 409 by design; only 5xx and transport
            # failures are errors.
            if status == 0 or status >= 500:
                errors += 1
            if think:
                await asyncio.sleep(think)

    started = time.perf_counter()
    await asyncio.gather(*(loop(u, i) for i, u in enumerate(users)))
    elapsed = time.perf_counter() - started
    result = {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "errors": errors,
    }
    print(f"{name}: {result} statuses={dict(sorted(statuses.items()))}")
    return result


async def main_async(args: argparse.Namespace) -> dict[str, float]:
    url = await database_url(args.database_url)
    accounts = await seed(url)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as session:
            for _ in range(200):
                try:
                    async with session.get(base + "/api/openapi.json") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            # One user per company in turn, so the load spreads over the 10 companies.
            by_company: dict[int, list[str]] = {}
            for cid, email in accounts:
                by_company.setdefault(cid, []).append(email)
            ordered = [
                emails[i] for i in range(USERS_PER_COMPANY) for emails in by_company.values()
            ]
            sims = [Simulated(session, base, email) for email in ordered[:500]]
            for start in range(0, len(sims), 50):
                await asyncio.gather(*(s.login() for s in sims[start : start + 50]))
            print(f"{len(sims)} users logged in")
            load = await run_phase(sims[:120], args.duration, 1.0, "120 users, 1 s think time")
            stress = await run_phase(sims[:500], args.duration, 1.0, "500 users, 1 s think time")
            closed = await run_phase(
                sims[:64], args.closed_duration, 0.0, "64 clients, closed loop"
            )
    finally:
        server.terminate()
        server.wait(10)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"server CPU: {usage.ru_utime + usage.ru_stime:.1f} s")
    return {
        "p95_ms_120": load["p95_ms"],
        "p99_ms_120": load["p99_ms"],
        "p95_ms_500": stress["p95_ms"],
        "errors_500": stress["errors"],
        "max_rps": closed["rps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--closed-duration", type=float, default=20.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
