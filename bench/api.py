"""bench/api: the control API under simulated users, as the blueprint's load and stress tests.

Starts `sendmill serve` (embedded PostgreSQL in bench/out/api/, the control API under uvicorn
with uvloop and httptools in two processes, as configs/production.example.toml has it) and
seeds, in bulk with COPY into the control package's own tables: 10 companies, each with 1,000
campaigns (10,000 in all), 10,000 contacts (100,000) spread over 20 lists, 20 templates, 2
sender profiles and 50 users of every role.

Then three phases, each simulated user logged in (POST /api/auth/login) as a different user
and driving its own aiohttp session (its own connection) with a mix a marketing team makes:
list campaigns (filtered by status or type, or searched, a random page), get a campaign,
list contacts (by list, opt-in state or search, a random page), get a contact, create a
campaign, update a draft campaign. A role only does what it may: read-only roles read.

1. load: 120 users for 60 s, one second of think time between requests (blueprint: p95 under
   180 ms; our target 50 ms);
2. stress: 500 users for 60 s, same think time (target: p95 under 180 ms, no errors);
3. closed loop: 64 clients, no think time, 30 s: the maximum request rate.

Each phase prints p50/p95/p99 and errors (any answer other than 2xx, or a failed request),
overall and per operation, and the load generator's own CPU use (so it is visibly not the
bottleneck). The bench config lifts the per-user rate limit (1,200/min by default would cap
the closed loop, which is what a per-user limit is for) and uses a cheap argon2 cost so 500
logins take seconds; everything else is the shipped default.

Usage: .venv/bin/python bench/api.py [--quick] [--load-users 120] [--stress-users 500]
[--duration 60] [--clients 64] [--closed-duration 30] [--processes 2] [--profile]
(--quick: 10 s phases, 5 s closed loop, for a smoke run; --profile: py-spy records the daemon
during the stress phase into bench/out/api/profile.txt.)
The last output line is one JSON object:
{"p95_ms_120", "p99_ms_120", "p95_ms_500", "errors_500", "max_rps"}.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import free_port, stop_database, wait_port  # noqa: E402
from control.auth import password_hasher  # noqa: E402
from control.cli import create_company  # noqa: E402
from control.permissions import role_permissions  # noqa: E402
from control.routes.campaigns import CAMPAIGN_TYPES  # noqa: E402
from mta import database  # noqa: E402
from mta.config import load_config  # noqa: E402

OUT = ROOT / "bench" / "out" / "api"
PY = sys.executable
PASSWORD = "bench password, long enough"
COMPANIES = 10
CAMPAIGNS = 1_000  # per company
CONTACTS = 10_000  # per company
LISTS = 20
TEMPLATES = 20
USERS = 50  # per company: 500 users, one per simulated user of the stress phase
# Roles of each company's 50 users: a marketing team with its readers.
ROLE_MIX = (
    ["admin"] * 2
    + ["marketing_manager"] * 8
    + ["email_specialist"] * 20
    + ["analyst"] * 8
    + ["content_creator"] * 4
    + ["sales"] * 4
    + ["executive"] * 4
)
STATUS_MIX = ["draft"] * 50 + ["scheduled"] * 10 + ["sent"] * 20 + ["completed"] * 10
STATUS_MIX += ["paused"] * 5 + ["cancelled"] * 5
HTML = (
    '<!doctype html><html><head><meta name="viewport" content="width=device-width">'
    "<style>@media (max-width:600px){.c{width:100%}}</style></head>"
    '<body><div class="c"><p>Hello {{first_name}}</p>'
    '<a href="{{unsubscribe_url}}">Unsubscribe</a></div></body></html>'
)
WORDS = ("spring", "summer", "autumn", "winter", "sale", "launch")
WORDS += ("news", "digest", "offer", "update", "welcome", "event")
CAMPAIGN_COLUMNS = (
    *("company_id", "campaign_name", "campaign_code", "subject_line", "campaign_type"),
    *("email_template_id", "sender_profile_id", "target_list_id", "campaign_status"),
    *("scheduled_send_date", "sent_date", "total_recipients", "delivered_count"),
    "opened_count",
)


def write_config(state: Path, ports: dict[str, int], processes: int) -> Path:
    config = f"""
hostname = "bench.sendmill.test"
state_dir = "{state}"
secret = "bench-secret"
[smtp]
listen = "127.0.0.1:{ports["smtp"]}"
listen_tls = "127.0.0.1:{ports["smtps"]}"
[http]
listen = "127.0.0.1:{ports["http"]}"
[bounce]
domain = "bounces.bench.test"
listen = "127.0.0.1:{ports["bounce"]}"
[tracker]
listen = "127.0.0.1:{ports["tracker"]}"
base_url = "http://127.0.0.1:{ports["tracker"]}"
[control]
listen = "127.0.0.1:{ports["control"]}"
processes = {processes}
access_token_ttl = "1h"
rate_limit = "1000000/m"
rate_burst = 100000
password_time_cost = 1
password_memory_kib = 8192
[log]
level = "warning"
format = "text"
"""
    path = state.parent / "sendmill.toml"
    path.write_text(config)
    return path


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Tenant:
    """What the simulated users of one company know about it."""

    id: int
    campaigns: list[int] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    lists: list[int] = field(default_factory=list)
    templates: list[int] = field(default_factory=list)
    senders: list[int] = field(default_factory=list)
    users: list[tuple[str, str]] = field(default_factory=list)  # (email, role)


async def copy(
    db: asyncpg.Connection, table: str, columns: Sequence[str], rows: list[tuple]
) -> None:
    await db.copy_records_to_table(table, records=rows, columns=list(columns))


async def ids(db: asyncpg.Connection, table: str, company_id: int) -> list[int]:
    rows = await db.fetch(f"SELECT id FROM {table} WHERE company_id = $1 ORDER BY id", company_id)
    return [r["id"] for r in rows]


async def seed(db: asyncpg.Connection, password_hash: str) -> list[Tenant]:
    rng = random.Random(42)
    now = datetime.now(UTC)
    tenants = []
    for n in range(1, COMPANIES + 1):
        name = f"company{n:02d}"
        domain = f"{name}.example"
        t = Tenant(await create_company(db, name))
        cid = t.id
        await db.execute(
            "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)", cid, domain
        )
        t.users = [(f"user{i:02d}@{domain}", role) for i, role in enumerate(ROLE_MIX)]
        await copy(
            db,
            "users",
            ["company_id", "email", "full_name", "role", "password_hash"],
            [(cid, email, f"User {email}", role, password_hash) for email, role in t.users],
        )
        await copy(
            db,
            "sender_profiles",
            ["company_id", "profile_name", "from_name", "from_address"],
            [(cid, f"Sender {i}", "News", f"news{i}@{domain}") for i in range(2)],
        )
        await copy(
            db,
            "email_templates",
            [
                "company_id",
                "template_name",
                "template_code",
                "template_type",
                "category",
                "html_content",
            ],
            [(cid, f"Template {i}", f"T{i}", "newsletter", "marketing", HTML) for i in range(20)],
        )
        await copy(
            db,
            "email_lists",
            ["company_id", "list_name", "list_code", "list_type", "source_type"],
            [(cid, f"List {i}", f"L{i}", "static", "import") for i in range(LISTS)],
        )
        t.senders = await ids(db, "sender_profiles", cid)
        t.templates = await ids(db, "email_templates", cid)
        t.lists = await ids(db, "email_lists", cid)
        states = ("none", "pending", "confirmed")
        await copy(
            db,
            "contacts",
            [
                "company_id",
                "email",
                "first_name",
                "last_name",
                "consent_source",
                "consent_at",
                "opt_in_state",
            ],
            [
                (
                    cid,
                    f"c{i}@{WORDS[i % 12]}.example",
                    f"First{i}",
                    f"Last{i}",
                    "import",
                    now,
                    states[i % 3],
                )
                for i in range(CONTACTS)
            ],
        )
        t.contacts = await ids(db, "contacts", cid)
        members = [(cid, t.lists[i % LISTS], c) for i, c in enumerate(t.contacts)]
        members += [(cid, t.lists[(i + 7) % LISTS], c) for i, c in enumerate(t.contacts) if i % 3]
        await copy(db, "list_members", ["company_id", "list_id", "contact_id"], members)
        rows = []
        for i in range(CAMPAIGNS):
            status = rng.choice(STATUS_MIX)
            scheduled = now + timedelta(days=rng.randint(1, 60)) if status == "scheduled" else None
            sent = (
                now - timedelta(days=rng.randint(1, 300))
                if status in ("sent", "completed")
                else None
            )
            total = rng.randint(100, 1000) if sent else 0
            word = WORDS[i % len(WORDS)]
            rows.append(
                (
                    cid,
                    f"{word.title()} campaign {i}",
                    f"EC-{i + 1:05d}",
                    f"The {word} issue, number {i}",
                    rng.choice(CAMPAIGN_TYPES),
                    rng.choice(t.templates),
                    rng.choice(t.senders),
                    rng.choice(t.lists),
                    status,
                    scheduled,
                    sent,
                    total,
                    total * 9 // 10,
                    total // 4,
                )
            )
        await copy(
            db,
            "email_campaigns",
            CAMPAIGN_COLUMNS,
            rows,
        )
        await db.execute(
            "UPDATE company_profiles SET campaign_seq = $2 WHERE company_id = $1", cid, CAMPAIGNS
        )
        t.campaigns = await ids(db, "email_campaigns", cid)
        t.drafts = [
            r["id"]
            for r in await db.fetch(
                "SELECT id FROM email_campaigns WHERE company_id = $1 "
                "AND campaign_status = 'draft'",
                cid,
            )
        ]
        tenants.append(t)
    await db.execute("ANALYZE")
    return tenants


# --- simulated users ------------------------------------------------------------------------


@dataclass
class Sample:
    op: str
    ms: float
    ok: bool
    status: int


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0  # the load generator's CPU seconds

    def record(self, op: str, ms: float, status: int) -> None:
        self.samples.append(Sample(op, ms, 200 <= status < 300, status))


class User:
    """One simulated user: its own session (connection), token, company and permissions."""

    def __init__(self, base: str, tenant: Tenant, email: str, role: str, rng: random.Random):
        self.base = base
        self.tenant = tenant
        self.email = email
        self.role = role
        self.rng = rng
        self.session = aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(limit=1), raise_for_status=False
        )
        self.headers: dict[str, str] = {}
        perms = role_permissions(role)
        self.ops: list[tuple[str, Callable[[], Awaitable[int]], int]] = [
            ("list_campaigns", self.list_campaigns, 35),
            ("get_campaign", self.get_campaign, 25),
        ]
        if "lists:read" in perms:
            self.ops += [
                ("list_contacts", self.list_contacts, 15),
                ("get_contact", self.get_contact, 10),
            ]
        if "campaigns:create" in perms:
            self.ops.append(("create_campaign", self.create_campaign, 7))
        if "campaigns:update" in perms:
            self.ops.append(("update_campaign", self.update_campaign, 8))
        self.weights = [w for _, _, w in self.ops]

    async def login(self) -> None:
        async with self.session.post(
            "/api/auth/login", json={"email": self.email, "password": PASSWORD}
        ) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"login {self.email}: {r.status} {body}")
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}

    async def close(self) -> None:
        await self.session.close()

    async def _call(self, method: str, path: str, **kw: Any) -> int:
        async with self.session.request(method, path, headers=self.headers, **kw) as r:
            await r.read()
            return r.status

    async def list_campaigns(self) -> int:
        rng = self.rng
        params: dict[str, Any] = {"page": rng.randint(1, 5), "page_size": 25}
        pick = rng.random()
        if pick < 0.4:
            params["campaign_status"] = rng.choice(STATUS_MIX)
        elif pick < 0.7:
            params["campaign_type"] = rng.choice(CAMPAIGN_TYPES)
        elif pick < 0.85:
            params["search"] = rng.choice(WORDS)
        return await self._call("GET", "/api/email-campaigns/", params=params)

    async def get_campaign(self) -> int:
        return await self._call(
            "GET", f"/api/email-campaigns/{self.rng.choice(self.tenant.campaigns)}/"
        )

    async def list_contacts(self) -> int:
        rng = self.rng
        params: dict[str, Any] = {"page": rng.randint(1, 5), "page_size": 25}
        pick = rng.random()
        if pick < 0.5:
            params["list_id"] = rng.choice(self.tenant.lists)
        elif pick < 0.7:
            params["opt_in_state"] = rng.choice(("none", "pending", "confirmed"))
        elif pick < 0.85 and role_permissions(self.role) >= {"contacts:pii"}:
            params["search"] = f"c{rng.randint(1, 9999)}@"
        return await self._call("GET", "/api/contacts/", params=params)

    async def get_contact(self) -> int:
        return await self._call("GET", f"/api/contacts/{self.rng.choice(self.tenant.contacts)}/")

    async def create_campaign(self) -> int:
        t, rng = self.tenant, self.rng
        word = rng.choice(WORDS)
        body = {
            "campaign_name": f"{word.title()} push",
            "subject_line": f"Our {word} news",
            "campaign_type": rng.choice(CAMPAIGN_TYPES),
            "email_template_id": rng.choice(t.templates),
            "target_list_id": rng.choice(t.lists),
            "sender_profile_id": rng.choice(t.senders),
        }
        return await self._call("POST", "/api/email-campaigns/", json=body)

    async def update_campaign(self) -> int:
        word = self.rng.choice(WORDS)
        body = {"subject_line": f"Updated: {word} news", "preheader_text": f"All about {word}"}
        campaign = self.rng.choice(self.tenant.drafts)
        return await self._call("PATCH", f"/api/email-campaigns/{campaign}/", json=body)

    async def one_request(self, phase: Phase) -> None:
        name, op, _ = self.rng.choices(self.ops, self.weights)[0]
        started = time.perf_counter()
        try:
            status = await op()
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        phase.record(name, (time.perf_counter() - started) * 1000, status)

    async def run(self, phase: Phase, until: float, think: float) -> None:
        if think:
            await asyncio.sleep(self.rng.uniform(0, think))  # users arrive spread over 1 s
        while time.monotonic() < until:
            await self.one_request(phase)
            if think:
                await asyncio.sleep(think)


async def run_phase(name: str, users: list[User], seconds: float, think: float) -> Phase:
    phase = Phase(name)
    cpu = time.process_time()
    started = time.monotonic()
    await asyncio.gather(*(u.run(phase, started + seconds, think) for u in users))
    phase.seconds = time.monotonic() - started
    phase.cpu = time.process_time() - cpu
    return phase


def quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = values[0] if values else 0.0
        return v, v, v
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[94], q[98]


def report(phase: Phase) -> dict[str, float]:
    ms = [s.ms for s in phase.samples]
    p50, p95, p99 = quantiles(ms)
    errors = [s for s in phase.samples if not s.ok]
    rps = len(ms) / phase.seconds if phase.seconds else 0.0
    print(
        f"{phase.name}: {len(ms)} requests in {phase.seconds:.1f} s = {rps:.0f} req/s; "
        f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  max {max(ms, default=0):.0f} ms"
        f"  errors {len(errors)}  (load generator CPU {phase.cpu / phase.seconds:.0%} of a core)"
    )
    by_op: dict[str, list[Sample]] = collections.defaultdict(list)
    for s in phase.samples:
        by_op[s.op].append(s)
    for op, samples in sorted(by_op.items()):
        o50, o95, o99 = quantiles([s.ms for s in samples])
        bad = collections.Counter(s.status for s in samples if not s.ok)
        print(
            f"    {op:16} {len(samples):7}  p50 {o50:7.1f}  p95 {o95:7.1f}  p99 {o99:7.1f} ms"
            + (f"  errors {dict(bad)}" if bad else "")
        )
    return {"p50": p50, "p95": p95, "p99": p99, "errors": len(errors), "rps": rps}


async def make_users(base: str, tenants: list[Tenant], count: int, seed: int) -> list[User]:
    """`count` users, spread over the companies, each a different login, logged in."""
    rng = random.Random(seed)
    users = []
    for i in range(count):
        tenant = tenants[i % len(tenants)]
        email, role = tenant.users[(i // len(tenants)) % len(tenant.users)]
        users.append(User(base, tenant, email, role, random.Random(rng.random())))
    sem = asyncio.Semaphore(16)

    async def login(u: User) -> None:
        async with sem:
            await u.login()

    await asyncio.gather(*(login(u) for u in users))
    return users


def start_profiler(pid: int, seconds: int) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile", flush=True)
        return None
    out = OUT / "profile.txt"
    return subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--duration", str(seconds), "--subprocesses"),
            *("--format", "raw", "--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def main(args: argparse.Namespace) -> None:
    if args.quick:
        args.duration, args.closed_duration = 10, 5
    if OUT.exists():
        shutil.rmtree(OUT)
    state = OUT / "state"
    state.mkdir(parents=True)
    names = ("smtp", "smtps", "bounce", "http", "tracker", "control")
    ports = {n: free_port() for n in names}
    config_path = write_config(state, ports, args.processes)
    config = load_config(config_path)
    env = {**os.environ, "SENDMILL_CONFIG": str(config_path)}
    log = (OUT / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(Path(PY).parent / "sendmill"), "serve"], env=env, stdout=log, stderr=log
    )
    users: list[User] = []
    joined_database = False
    try:
        await asyncio.to_thread(wait_port, ports["control"], 120)
        url = await database.resolve_url(config)
        joined_database = True
        db = await asyncpg.connect(url)
        hasher = password_hasher(
            config.control.password_time_cost, config.control.password_memory_kib
        )
        started = time.monotonic()
        print("seeding...", flush=True)
        tenants = await seed(db, hasher.hash(PASSWORD))
        await db.close()
        print(
            f"seeded {COMPANIES} companies, {COMPANIES * CAMPAIGNS} campaigns, "
            f"{COMPANIES * CONTACTS} contacts, {COMPANIES * USERS} users "
            f"in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        base = f"http://127.0.0.1:{ports['control']}"
        results = {}
        for name, count, seconds, think in (
            ("load", args.load_users, args.duration, 1.0),
            ("stress", args.stress_users, args.duration, 1.0),
            ("closed", args.clients, args.closed_duration, 0.0),
        ):
            users = await make_users(base, tenants, count, seed=count)
            print(f"{name}: {count} users, {seconds} s, think time {think:.0f} s", flush=True)
            profiler = None
            if args.profile and name == "stress":
                profiler = start_profiler(daemon.pid, int(seconds))
            phase = await run_phase(f"{name} ({count} users)", users, seconds, think)
            results[name] = report(phase)
            if profiler is not None:
                profiler.wait(60)
                print(f"    profile: {OUT / 'profile.txt'}")
            await asyncio.gather(*(u.close() for u in users))
            users = []
        print(
            json.dumps(
                {
                    "p95_ms_120": round(results["load"]["p95"], 1),
                    "p99_ms_120": round(results["load"]["p99"], 1),
                    "p95_ms_500": round(results["stress"]["p95"], 1),
                    "errors_500": results["stress"]["errors"],
                    "max_rps": round(results["closed"]["rps"]),
                }
            )
        )
    finally:
        await asyncio.gather(*(u.close() for u in users))
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if joined_database:
            stop_database(state)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (smoke run)")
    parser.add_argument("--load-users", type=int, default=120)
    parser.add_argument("--stress-users", type=int, default=500)
    parser.add_argument("--duration", type=int, default=60, help="seconds of each user phase")
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients")
    parser.add_argument("--closed-duration", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="py-spy the stress phase")
    parser.add_argument(
        "--processes", type=int, default=2, help="[control] processes (production example: 2)"
    )
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(arguments))
    except ImportError:
        asyncio.run(main(arguments))
