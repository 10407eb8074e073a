"""bench/segments: segment previews and campaign reports over a large company (issue 15).

Generates, set-wise (INSERT ... SELECT over generate_series) into an embedded PostgreSQL in
bench/out/segments/: one company with 1,000,000 contacts (five custom attributes: plan, age,
country, signup date, score), 20 lists (each contact on two), 200 sent campaigns, each
delivered to 50,000 contacts (a message and its recipient rows in the mail queue),
20,000,000 tracking events on those recipients (70% opens, about a third of them by machines,
30% clicks on five links per campaign, a few unsubscribes) spread over 180 days, 100,000
bounces and 5,000 complaints. Then folds the events into the contacts' engagement
(control/engagement.py, timed), and serves the control API in this process under uvicorn.

Measures over real HTTP: 20 representative segment previews (`POST /api/segments/preview`:
fields, attributes, lists, engagement, bounces, nested groups), each run 3 times, and the
campaign report endpoints (`GET /api/email-campaigns/{id}/analytics/` and `.../report/`)
of 20 campaigns, 3 times each; prints p50/p95 of each and the slowest preview with its
EXPLAIN ANALYZE.

Usage: .venv/bin/python bench/segments.py [--contacts 1000000] [--events 20000000]
[--small] [--reuse]
(--small: 100,000 contacts and 2,000,000 events; --reuse: measure again on the database a
previous run generated with the same sizes, without generating.)
The last output line is one JSON object:
{"segment_preview_p95_ms", "report_p95_ms", "contacts", "events"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_database  # noqa: E402
from control import engagement  # noqa: E402
from control.app import create_app  # noqa: E402
from control.auth import password_hasher  # noqa: E402
from control.cli import create_company, create_user  # noqa: E402
from mta import database  # noqa: E402
from mta.config import build_config  # noqa: E402

OUT = ROOT / "bench" / "out" / "segments"
PASSWORD = "bench password, long enough"
CAMPAIGNS = 200
LISTS = 20
DAYS = 180  # the campaigns' sends are spread over this many days before now
BOUNCES = 100_000
COMPLAINTS = 5_000
CONTACT_CHUNK = 250_000
CAMPAIGN_CHUNK = 10
EVENT_CHUNK = 1_000_000
REPEAT = 3

# Set-wise generation. Contact i of n: domain and attributes are arithmetic on i. Campaign k
# (1..200) goes to `per` contacts: recipient row (k-1)*per + j + 1 is contact
# 1 + (k*104729 + j*7919) % n (7919 is prime: distinct contacts within a campaign).
CONTACTS_SQL = """
INSERT INTO contacts (id, company_id, email, first_name, last_name, attributes, consent_source,
                      consent_at, opt_in_state, confirmed_at, created_at)
SELECT i, $1, 'user' || i || '@' || (ARRAY['gmail.com','outlook.com','yahoo.com','icloud.com',
                                           'example.org','mail.example'])[1 + i % 6],
       'First' || (i % 5000), 'Last' || (i % 20000),
       jsonb_build_object(
           'plan', (ARRAY['free','pro','team','enterprise'])[1 + (i * 7) % 4],
           'age', 18 + (i * 13) % 62,
           'country', (ARRAY['FR','DE','US','GB','ES','IT','NL','SE','PL','BR'])[1 + (i * 3) % 10],
           'signup', to_char(timestamptz '2024-01-01' + ((i * 37) % 1000) * interval '1 day',
                             'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'score', round(((i * 7919) % 10000) / 100.0, 2)),
       (ARRAY['form','import','api'])[1 + i % 3], now() - ((i % 700) * interval '1 day'),
       (ARRAY['none','pending','confirmed','confirmed']::opt_in_state[])[1 + i % 4],
       CASE WHEN i % 4 >= 2 THEN now() - ((i % 600) * interval '1 day') END,
       now() - ((i % 730) * interval '1 day')
FROM generate_series($2::bigint, $3::bigint) i
"""
MEMBERS_SQL = """
INSERT INTO list_members (company_id, list_id, contact_id, state, subscribed_at)
SELECT $1, l.list_id, i, CASE WHEN (i + l.list_id) % 25 = 0 THEN 'unsubscribed'
                              ELSE 'subscribed' END::membership_state, now()
FROM generate_series($2::bigint, $3::bigint) i
CROSS JOIN LATERAL (VALUES (1 + i % 20), (1 + (i / 20 + 7) % 20)) l(list_id)
ON CONFLICT DO NOTHING
"""
RECIPIENTS_SQL = """
INSERT INTO recipients (id, message_id, company_id, recipient, domain, priority, state,
                        attempts, next_attempt_at, expires_at, created_at, updated_at,
                        finished_at)
SELECT (k - 1) * $3::bigint + j + 1, k, $1, c.email, split_part(c.email, '@', 2), 1,
       CASE WHEN j % 50 = 0 THEN 'bounced' ELSE 'delivered' END::recipient_state, 1,
       s.at, s.at + interval '5 days', s.at, s.at, s.at
FROM generate_series($4::bigint, $5::bigint) k
CROSS JOIN generate_series(0, $3::bigint - 1) j
CROSS JOIN LATERAL (SELECT now() - ($6::int - (k - 1) * $6::int / $7::int) * interval '1 day'
                    AS at) s
JOIN contacts c ON c.id = 1 + (k * 104729 + j * 7919) % $2::bigint
"""
# Event g hits recipient row 1 + (g * 2654435761) % (campaigns * per).
EVENTS_SQL = """
INSERT INTO tracking_events (kind, at, company_id, recipient_id, campaign_id, list_id,
                             link_index, url, user_agent, ip, machine, machine_reason, sent_at)
SELECT e.kind, s.at + ((g * 37) % (72 * 3600)) * interval '1 second', $1, e.r, e.k,
       1 + e.k % 20,
       CASE WHEN e.kind = 'click' THEN (g % 5)::int END,
       CASE WHEN e.kind = 'click' THEN 'https://shop.example/c' || e.k || '/link' || g % 5 END,
       'Mozilla/5.0 (bench)', '192.0.2.0'::inet, e.machine,
       CASE WHEN e.machine THEN 'apple_mpp' END, s.at
FROM generate_series($4::bigint, $5::bigint) g
CROSS JOIN LATERAL (
    SELECT r, (r - 1) / $3::bigint + 1 AS k,
           CASE WHEN g % 1000 = 999 THEN 'unsubscribe' WHEN g % 10 < 7 THEN 'open'
                ELSE 'click' END::tracking_event_kind AS kind,
           CASE WHEN g % 10 < 7 THEN (g / 10) % 10 < 3 ELSE (g / 10) % 20 = 0 END AS machine
    FROM (SELECT 1 + (g * 2654435761) % ($2::bigint * $3::bigint) AS r) x) e
CROSS JOIN LATERAL (SELECT now() - ($6::int - (e.k - 1) * $6::int / $2::int) * interval '1 day'
                    AS at) s
"""
BOUNCES_SQL = """
INSERT INTO bounce_events (company_id, campaign_id, address, domain, kind, reason, hard,
                           source, created_at)
SELECT $1, 1 + g % 200, c.email, split_part(c.email, '@', 2), $4::bounce_event_kind,
       CASE WHEN $4 = 'complained' THEN 'feedback'
            ELSE (ARRAY['userunknown','mailboxfull','blocked','expired'])[1 + g % 4] END,
       CASE WHEN $4 = 'complained' THEN NULL ELSE g % 4 = 0 END, 'bench',
       now() - ((g * 31) % ($5::int * 86400)) * interval '1 second'
FROM generate_series(1, $3::bigint) g
JOIN contacts c ON c.id = 1 + (g * 48271) % $2::bigint
"""

# The 20 previews: fields, attributes, lists, engagement, bounces, nested groups.
PREVIEWS: list[tuple[str, dict[str, Any]]] = [
    ("email domain", {"field": "email_domain", "op": "equals", "value": "gmail.com"}),
    ("name starts with", {"field": "first_name", "op": "starts_with", "value": "First12"}),
    ("created in last 30 days", {"field": "created_at", "op": "within_last_days", "value": 30}),
    ("opt-in confirmed", {"consent": "confirmed"}),
    ("plan equals", {"attribute": "plan", "op": "equals", "value": "enterprise"}),
    ("country in", {"attribute": "country", "op": "in", "value": ["FR", "DE", "NL"]}),
    ("age over 60", {"attribute": "age", "op": "gt", "value": 60}),
    (
        "signup before 2025",
        {"attribute": "signup", "op": "lt", "value": "2025-01-01T00:00:00Z"},
    ),
    ("on list 3", {"list": 3}),
    ("opened campaign 150", {"engagement": "opened", "campaign": 150}),
    ("clicked campaign 190", {"engagement": "clicked", "campaign": 190}),
    ("opened any in 30 days", {"engagement": "opened", "within_days": 30}),
    ("clicked any in 90 days", {"engagement": "clicked", "within_days": 90}),
    ("never opened", {"engagement": "never_opened"}),
    ("raw opens in 30 days", {"engagement": "opened", "within_days": 30, "raw": True}),
    ("clicked a link", {"engagement": "clicked", "link": "https://shop.example/c180/link2"}),
    ("last bounce hard", {"bounced": "hard"}),
    (
        "nested: pro on list 5, engaged",
        {
            "all": [
                {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
                {"list": 5},
                {
                    "any": [
                        {"engagement": "opened", "within_days": 60},
                        {"engagement": "clicked", "campaign": 120},
                    ]
                },
            ]
        },
    ),
    (
        "nested: win-back",
        {
            "all": [
                {"engagement": "never_opened", "within_days": 90},
                {"engagement": "opened"},
                {"not": {"bounced": "any"}},
                {"complained": False},
            ]
        },
    ),
    (
        "nested: any of three",
        {
            "any": [
                {"attribute": "score", "op": "gte", "value": 99.5},
                {
                    "all": [
                        {"attribute": "country", "op": "equals", "value": "SE"},
                        {"field": "opt_in_state", "op": "equals", "value": "pending"},
                    ]
                },
                {"complained": True},
            ]
        },
    ),
]


def sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    """(contacts, events, recipients per campaign): two events per recipient row on average."""
    per = max(1, min(args.contacts, args.events // (CAMPAIGNS * 2)))
    return args.contacts, args.events, per


async def timed(db: asyncpg.Connection, label: str, sql: str, *params: Any) -> None:
    started = time.monotonic()
    await db.execute(sql, *params)
    print(f"  {label}: {time.monotonic() - started:.1f} s", flush=True)


async def generate(db: asyncpg.Connection, company: int, n: int, events: int, per: int) -> None:
    await db.execute("SET synchronous_commit = off")
    await db.execute("SET work_mem = '64MB'")
    await db.execute(
        "INSERT INTO email_templates (id, company_id, template_name, template_code,"
        " template_type, category, html_content) VALUES (1, $1, 'Bench', 'BENCH', 'newsletter',"
        " 'marketing', '<p>hi</p>')",
        company,
    )
    await db.execute(
        "INSERT INTO email_lists (id, company_id, list_name, list_code, list_type, source_type)"
        " SELECT l, $1, 'List ' || l, 'L' || l, 'static', 'import'"
        " FROM generate_series(1, $2) l",
        company,
        LISTS,
    )
    await db.execute(
        "INSERT INTO email_campaigns (id, company_id, campaign_name, campaign_code, subject_line,"
        " campaign_type, email_template_id, target_list_id, campaign_status, sent_date,"
        " total_recipients, delivered_count)"
        " SELECT k, $1, 'Campaign ' || k, 'B-' || k, 'Subject ' || k, 'newsletter', 1,"
        " 1 + k % 20, 'sent', now() - ($3::int - (k - 1) * $3::int / $2::int) * interval '1 day',"
        " $4, $4 FROM generate_series(1, $2) k",
        company,
        CAMPAIGNS,
        DAYS,
        per,
    )
    await db.execute(
        "INSERT INTO messages (id, company_id, mail_from, from_domain, body, size, category,"
        " campaign_id, list_id) SELECT k, $1, 'news@bench.example', 'bench.example',"
        " '\\x00'::bytea, 1, 'marketing', k, 1 + k % 20 FROM generate_series(1, $2) k",
        company,
        CAMPAIGNS,
    )
    for sequence, value in (
        ("email_templates_id_seq", 1),
        ("email_lists_id_seq", LISTS),
        ("email_campaigns_id_seq", CAMPAIGNS),
        ("messages_id_seq", CAMPAIGNS),
        ("contacts_id_seq", n),
        ("recipients_id_seq", CAMPAIGNS * per),
    ):
        await db.execute("SELECT setval($1, $2)", sequence, value)
    for low in range(1, n + 1, CONTACT_CHUNK):
        high = min(n, low + CONTACT_CHUNK - 1)
        await timed(db, f"contacts {low:,}-{high:,}", CONTACTS_SQL, company, low, high)
        await timed(db, f"memberships {low:,}-{high:,}", MEMBERS_SQL, company, low, high)
    for k in range(1, CAMPAIGNS + 1, CAMPAIGN_CHUNK):
        last = min(CAMPAIGNS, k + CAMPAIGN_CHUNK - 1)
        await timed(
            db,
            f"recipients of campaigns {k}-{last}",
            RECIPIENTS_SQL,
            company,
            n,
            per,
            k,
            last,
            DAYS,
            CAMPAIGNS,
        )
    for low in range(1, events + 1, EVENT_CHUNK):
        high = min(events, low + EVENT_CHUNK - 1)
        await timed(
            db, f"events {low:,}-{high:,}", EVENTS_SQL, company, CAMPAIGNS, per, low, high, DAYS
        )
    await timed(db, "bounces", BOUNCES_SQL, company, n, BOUNCES, "bounced", DAYS)
    await timed(db, "complaints", BOUNCES_SQL, company, n, COMPLAINTS, "complained", DAYS)
    await timed(
        db,
        "unsubscriptions",
        "INSERT INTO unsubscriptions (company_id, address, list_id, source)"
        " SELECT $1, email, CASE WHEN id % 2 = 0 THEN 0 ELSE 1 + id % 20 END, 'page'"
        " FROM contacts WHERE company_id = $1 AND id % 97 = 0",
        company,
    )
    await timed(db, "analyze", "ANALYZE")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(label: str, samples: list[float]) -> dict[str, float]:
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    print(f"{label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(samples):.0f} ms", flush=True)
    return {"p50": p50, "p95": p95}


async def measure(pool: asyncpg.Pool, company: str) -> tuple[float, float]:
    config = build_config(
        {
            "secret": "bench",
            "control": {
                "listen": "127.0.0.1:0",
                "password_time_cost": 1,
                "password_memory_kib": 1024,
                "rate_limit": "1000000/m",
                "rate_burst": 100000,
            },
        }
    )
    app = create_app(pool, config, b"bench secret")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(600):  # bounded: 30 s for uvicorn to listen
        if server.started:
            break
        await asyncio.sleep(0.05)
    email = f"bench{int(time.time())}@bench.example"
    await create_user(pool, company, email, "admin", PASSWORD, hasher=password_hasher(1, 1024))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        previews: list[float] = []
        slowest: tuple[float, str, dict[str, Any]] = (0.0, "", {})
        for label, criteria in PREVIEWS:
            times = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                r = await client.post(
                    "/api/segments/preview", headers=headers, json={"criteria": criteria}
                )
                times.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
            count = r.json()["count"]
            print(f"  preview {label}: {count:,} contacts, {min(times):.0f}-{max(times):.0f} ms")
            previews += times
            if max(times) > slowest[0]:
                slowest = (max(times), label, criteria)
        reports: dict[str, list[float]] = {"analytics/": [], "report/": []}
        for k in range(10, CAMPAIGNS + 1, CAMPAIGNS // 20):
            for endpoint, times in reports.items():
                for _ in range(REPEAT):
                    started = time.perf_counter()
                    r = await client.get(f"/api/email-campaigns/{k}/{endpoint}", headers=headers)
                    times.append((time.perf_counter() - started) * 1000)
                    r.raise_for_status()
    server.should_exit = True
    await task
    # the app's listeners hold pool connections until stopped (control/server.py does this)
    services = app.state.services
    await services.hub.stop()
    await services.auth.principals.stop()
    await services.auth.key_usage.drain()
    preview = summary("segment preview", previews)
    for endpoint, times in reports.items():
        summary(f"campaign {endpoint}", times)
    report = summary("campaign reports (both)", [t for ts in reports.values() for t in ts])
    print(f"slowest preview: {slowest[1]} ({slowest[0]:.0f} ms); its plan:")
    from control import segments  # the module measured; imported late so generation runs alone

    company_id = await pool.fetchval("SELECT id FROM companies WHERE name = $1", company)
    condition = segments.compile_criteria(
        segments.validate(slowest[2]), company_param=1, first_param=2
    )
    sql = segments.with_condition(segments.SQL["segment-count"], condition)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(segments.WORK_MEM)
        plan = await conn.fetch("EXPLAIN ANALYZE " + sql, company_id, *condition.params)
    print("\n".join("    " + r[0] for r in plan))
    return preview["p95"], report["p95"]


async def fold_engagement(url: str, events: int) -> None:
    """Fold every event into the contacts' engagement (control/engagement.py). A backlog of
    millions is folded 2,000,000 events a statement: one pass over the recipient rows per
    chunk (a hash join) instead of one per 100,000 events; on a pool without the daemon's
    60 s command timeout, with the memory to hash the chunk."""
    pool = await asyncpg.create_pool(
        url, min_size=2, max_size=2, command_timeout=None, server_settings={"work_mem": "256MB"}
    )
    started = time.monotonic()
    try:
        done = await engagement.catch_up(pool, chunk=2_000_000, max_chunks=events // 2_000_000 + 2)
    finally:
        await pool.close()
    assert done is not None and not done.behind
    seconds = time.monotonic() - started
    print(
        f"engagement folded in: {seconds:.0f} s ({events / seconds:,.0f} events/s), "
        f"{done.pairs:,} contact-campaign upserts",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    if args.small:
        args.contacts, args.events = 100_000, 2_000_000
    n, events, per = sizes(args)
    generated = OUT / f"generated-{n}-{events}"
    if not (args.reuse and generated.exists()) and OUT.exists():
        shutil.rmtree(OUT)
    state = OUT / "state"
    state.mkdir(parents=True, exist_ok=True)
    url = await asyncio.to_thread(database.embedded_url, state)
    company = "bench"
    try:
        conn = await asyncpg.connect(url)
        try:
            await database.migrate(conn)
            if not generated.exists():
                started = time.monotonic()
                company_id = await create_company(conn, company)
                print(
                    f"generating {n:,} contacts, {CAMPAIGNS} campaigns x {per:,} recipients, "
                    f"{events:,} events",
                    flush=True,
                )
                await generate(conn, company_id, n, events, per)
                print(f"generated in {time.monotonic() - started:.0f} s", flush=True)
                generated.touch()
        finally:
            await conn.close()
        await fold_engagement(url, events)
        pool = await database.connect(url, 4)
        try:
            # what autovacuum does in a running system: visibility maps for index-only scans
            for table in ("contacts", "list_members", "contact_engagement",
                          "contact_campaign_engagement"):  # fmt: skip
                await pool.execute(f"VACUUM ANALYZE {table}")
            preview_p95, report_p95 = await measure(pool, company)
        finally:
            await pool.close()
    finally:
        stop_database(state)
    print(
        json.dumps(
            {
                "segment_preview_p95_ms": round(preview_p95, 1),
                "report_p95_ms": round(report_p95, 1),
                "contacts": n,
                "events": events,
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--small", action="store_true", help="100,000 contacts, 2,000,000 events")
    parser.add_argument("--reuse", action="store_true", help="measure the last generated data")
    asyncio.run(main(parser.parse_args()))
