"""bench/campaign_fanout: a campaign to a million contacts (issue 10).

1,000,000 contacts (five custom attributes each) on one list; a personalised template of about
20 KB with 10 links; the campaign sent through the control API of `sendmill serve` (embedded
PostgreSQL, two delivery processes, every domain routed to a loopback sink). Measures:

- enqueue_s_1m: from the send request to every queue row written (the version's enqueue done),
  with delivery already running beside it, as in production;
- peak_rss_mb: peak RSS of the daemon's processes (PostgreSQL left out) during the enqueue;
- render_sign_per_s_per_core: render + track + compose + DKIM-sign (RSA-2048) of the frozen
  version for real contacts, per CPU second of one core (the delivery processes' per-recipient
  work, measured in this process on the version the daemon froze);
- delivered_per_cpu_s: end to end, messages delivered to the sink per CPU second of the
  daemon's processes over a window after the enqueue (claim, render, sign, SMTP included).

Usage: .venv/bin/python bench/campaign_fanout.py [--contacts N] [--window S]
The last output line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_database, wait_port  # noqa: E402
from bench.mta_throughput import SINK, tree_stats  # noqa: E402

OUT = ROOT / "bench" / "out" / "campaign_fanout"
PY = sys.executable
PASSWORD = "bench horse battery staple"


def write_config(state: Path, sink_port: int, processes: int) -> tuple[Path, dict[str, int]]:
    ports = {name: free_port() for name in ("smtp", "smtps", "bounce", "http", "control", "t")}
    config = f"""
hostname = "bench.sendmill.test"
state_dir = "{state}"
secret = "bench-secret"
[database]
pool_size = 10
[smtp]
listen = "127.0.0.1:{ports["smtp"]}"
listen_tls = "127.0.0.1:{ports["smtps"]}"
[http]
listen = "127.0.0.1:{ports["http"]}"
[control]
listen = "127.0.0.1:{ports["control"]}"
password_time_cost = 1
password_memory_kib = 1024
[tracker]
listen = "127.0.0.1:{ports["t"]}"
base_url = "https://t.bench.test"
[bounce]
domain = "bounces.bench.test"
listen = "127.0.0.1:{ports["bounce"]}"
[delivery]
processes = {processes}
batch_size = 500
poll_interval = "0.2s"
[log]
level = "warning"
format = "text"
[limits.default]
connections = 20
messages_per_connection = 1000
[[routes]]
domain = "*"
host = "127.0.0.1:{sink_port}"
tls = "none"
[[sending_domains]]
domain = "bench.test"
company = "bench"
dkim = [{{ selector = "b1", key_file = "{state}/dkim/bench.test.b1.pem" }}]
"""
    path = state.parent / "sendmill.toml"
    path.write_text(config)
    return path, ports


def template_html() -> str:
    """About 20 KB of newsletter with 10 links and a few personal touches."""
    blocks = []
    for i in range(10):
        blocks.append(
            f'<tr><td class="block"><h2>Story {i} for {{{{ contact.first_name }}}}</h2>'
            + "<p>"
            + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " * 22
            + f'</p><p><a class="btn" href="https://shop.bench.test/story/{i}?c='
            f'{{{{ contact.attributes.segment }}}}">Read story {i}</a></p></td></tr>'
        )
    return (
        '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
        "<style>@media (max-width:600px){.block{width:100%}}</style></head><body>"
        "<p>Hello {{ contact.first_name | default('friend') }} from "
        "{{ contact.attributes.city }}, plan {{ contact.attributes.plan }}</p>"
        '<table class="main">' + "".join(blocks) + "</table>"
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> '
        '<a href="{{ preferences_url }}">Preferences</a></p></body></html>'
    )


CSS = ".block{padding:12px;font-family:Arial,sans-serif}.btn{color:#ffffff;background:#0a5}"


async def setup(db: asyncpg.Connection, api: httpx.AsyncClient, contacts: int) -> int:
    """Company, admin, template, list with `contacts` members, sender, campaign; its id."""
    from control.auth import password_hasher
    from control.cli import create_company, create_user

    await create_company(db, "bench")
    await create_user(
        db, "bench", "boss@bench.test", "admin", PASSWORD, hasher=password_hasher(1, 1024)
    )
    r = await api.post("/api/auth/login", json={"email": "boss@bench.test", "password": PASSWORD})
    r.raise_for_status()
    api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    t = await api.post(
        "/api/email-templates/",
        json={
            "template_name": "Newsletter",
            "template_code": "NEWS",
            "template_type": "newsletter",
            "category": "marketing",
            "html_content": template_html(),
            "css_styles": CSS,
        },
    )
    assert t.status_code == 201, t.text
    lst = await api.post(
        "/api/email-lists/",
        json={"list_name": "All", "list_code": "ALL", "list_type": "static", "source_type": "api"},
    )
    lst.raise_for_status()
    s = await api.post(
        "/api/sender-profiles/",
        json={"profile_name": "News", "from_name": "Bench News", "from_address": "news@bench.test"},
    )
    s.raise_for_status()
    company_id = await db.fetchval("SELECT id FROM companies WHERE name = 'bench'")
    list_id = lst.json()["id"]
    print(f"writing {contacts:,} contacts...", flush=True)
    started = time.monotonic()
    await db.execute(
        """
        INSERT INTO contacts (company_id, email, first_name, last_name, attributes, opt_in_state)
        SELECT $1, 'user' || g || '@d' || (g % 500) || '.bench-dest.test', 'Name' || g, 'Last',
               jsonb_build_object('city', 'City ' || (g % 977), 'plan', 'p' || (g % 3),
                                  'segment', 's' || (g % 7), 'age', 20 + g % 50,
                                  'joined', '2026-0' || (1 + g % 9) || '-01'),
               'confirmed'
        FROM generate_series(1, $2) g
        """,
        company_id,
        contacts,
    )
    await db.execute(
        "INSERT INTO list_members (company_id, list_id, contact_id)"
        " SELECT company_id, $2, id FROM contacts WHERE company_id = $1",
        company_id,
        list_id,
    )
    await db.execute("ANALYZE contacts; ANALYZE list_members")
    print(f"  contacts written in {time.monotonic() - started:.1f}s", flush=True)
    c = await api.post(
        "/api/email-campaigns/",
        json={
            "campaign_name": "Fan-out",
            "subject_line": "News for {{ contact.first_name }}",
            "preheader_text": "This week in {{ contact.attributes.city }}",
            "campaign_type": "newsletter",
            "email_template_id": t.json()["id"],
            "target_list_id": list_id,
            "sender_profile_id": s.json()["id"],
        },
    )
    assert c.status_code == 201, c.text
    return c.json()["id"]


async def render_sign_rate(db: asyncpg.Connection, config_path: Path, n: int) -> float:
    """Render + track + compose + sign per CPU second, one core, on the frozen version."""
    from control.campaign_delivery import CampaignRenderer, _Version
    from mta.config import load_config
    from mta.daemon import build_signers
    from mta.queue import ClaimedRecipient
    from tracker.server import campaign_links

    config = load_config(config_path)
    row = await db.fetchrow(
        "SELECT v.*, coalesce(co.settings -> 'tracking', '{}'::jsonb) AS tracking"
        " FROM campaign_versions v JOIN companies co ON co.id = v.company_id"
        " ORDER BY v.id DESC LIMIT 1"
    )
    contacts = await db.fetch(
        "SELECT id, email, first_name, last_name, attributes FROM contacts"
        " WHERE company_id = $1 ORDER BY id LIMIT $2",
        row["company_id"],
        n,
    )
    version = _Version(row)
    renderer = CampaignRenderer(None, campaign_links(config))  # type: ignore[arg-type]
    signer = build_signers(config).signer_for("bench.test")
    assert signer is not None
    now = datetime.now(UTC)
    size = 0
    started = time.process_time()
    for i, contact in enumerate(contacts):
        claim = ClaimedRecipient(i + 1, 1, row["company_id"], contact["email"], "d", 1, 0, now, now)
        body = renderer.render_one(version, claim, contact)
        assert isinstance(body, bytes), body
        data = signer.sign(body) + body
        size += len(data)
    cpu = time.process_time() - started
    print(f"  {len(contacts)} messages, {size / len(contacts) / 1024:.1f} KB each", flush=True)
    return len(contacts) / cpu


async def run(args: argparse.Namespace) -> dict[str, float]:
    if OUT.exists():
        shutil.rmtree(OUT)
    state = OUT / "state"
    state.mkdir(parents=True)
    sink_port = free_port()
    sink = subprocess.Popen(
        [PY, "-c", SINK, str(sink_port), str(OUT / "sink.count")], stdout=subprocess.PIPE
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
    config, ports = write_config(state, sink_port, args.processes)
    env = {**os.environ, "SENDMILL_CONFIG": str(config)}
    daemon = subprocess.Popen([str(Path(PY).parent / "sendmill"), "serve"], env=env)
    figures: dict[str, float] = {}
    try:
        wait_port(ports["control"], 120)
        from mta import database
        from mta.config import load_config

        db = await asyncpg.connect(await database.resolve_url(load_config(config)))
        base = f"http://127.0.0.1:{ports['control']}"
        async with httpx.AsyncClient(base_url=base, timeout=120) as api:
            campaign = await setup(db, api, args.contacts)
            rss0, _ = tree_stats(daemon.pid)
            print(f"sending (daemon RSS before: {rss0:.0f} MB)...", flush=True)
            started = time.monotonic()
            r = await api.post(f"/api/email-campaigns/{campaign}/send/", json={})
            assert r.status_code == 200, r.text
            peak = rss0
            while True:
                await asyncio.sleep(0.2)
                rss, _ = tree_stats(daemon.pid)
                peak = max(peak, rss)
                row = await db.fetchrow(
                    "SELECT enqueued, enqueued_at IS NOT NULL AS done FROM campaign_versions"
                    " WHERE campaign_id = $1",
                    campaign,
                )
                if row is not None and row["done"]:
                    break
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError("enqueue did not finish in time")
            enqueue_s = time.monotonic() - started
            rows = await db.fetchval("SELECT count(*) FROM recipients WHERE contact_id IS NOT NULL")
            print(f"  {rows:,} queue rows in {enqueue_s:.1f}s, peak RSS {peak:.0f} MB", flush=True)
            figures["enqueue_s"] = round(enqueue_s, 2)
            figures["queue_rows"] = rows
            figures["peak_rss_mb"] = round(peak, 1)
            # End to end over a window: delivered per CPU second of the daemon's processes.
            count = "SELECT count(*) FROM recipients WHERE state = 'delivered'"
            d0, (_, cpu0) = await db.fetchval(count), tree_stats(daemon.pid)
            await asyncio.sleep(args.window)
            d1, (_, cpu1) = await db.fetchval(count), tree_stats(daemon.pid)
            figures["delivered_per_s"] = round((d1 - d0) / args.window, 1)
            figures["delivered_per_cpu_s"] = round((d1 - d0) / max(0.001, cpu1 - cpu0), 1)
            print(f"  delivered {d1 - d0} in {args.window}s", flush=True)
        figures["render_sign_per_s_per_core"] = round(
            await render_sign_rate(db, config, args.render_sample), 1
        )
        await db.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        sink.kill()
        if (state / "pgdata").exists():
            stop_database(state)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=20.0, help="delivery window, seconds")
    parser.add_argument("--render-sample", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2, help="delivery processes")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    scale = 1_000_000 / args.contacts
    print(
        json.dumps(
            {
                "enqueue_s_1m": round(figures["enqueue_s"] * scale, 2),
                "peak_rss_mb": figures["peak_rss_mb"],
                "render_sign_per_s_per_core": figures["render_sign_per_s_per_core"],
                "contacts": args.contacts,
                "delivered_per_s": figures["delivered_per_s"],
                "delivered_per_cpu_s": figures["delivered_per_cpu_s"],
            }
        )
    )


if __name__ == "__main__":
    main()
