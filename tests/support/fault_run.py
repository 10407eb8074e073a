"""A fault run: two `sendmill serve` processes on a PostgreSQL of their own deliver a mixed
workload (SMTP and HTTP, transactional and marketing) to a receiving MX while faults strike —
kill -9 of a daemon, PostgreSQL stopped (fast, then immediate) for a while, one daemon killed
for good — and then every acknowledged message is accounted for.

tests/faults runs a short one in CI; bench/faults.py a long one. Figures:
- acked: messages the daemons acknowledged (250 / 202);
- lost: acknowledged and neither received nor bounced/expired by the end;
- duplicates_allowed: received more than once with at most one delivery recorded (the receiver
  had it, the outcome was not yet written: SMTP allows that);
- duplicates_not_allowed: received again after a delivery was recorded;
- stalls: acknowledged rows not final when the run ends;
- max_recovery_s: longest time from the end of a fault to the next message received.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import httpx

from mta import credentials, tenants
from tests.support.daemon_process import DaemonProcess, write_config
from tests.support.dnsstub import StubDns
from tests.support.fixtures_daemon import TEST_DOMAIN, daemon_settings
from tests.support.mx_server import ReceivingServer
from tests.support.own_postgres import OwnPostgres
from tests.support.ports import free_port


@dataclass
class FaultPlan:
    messages: int = 1000  # at most, at `rate` per second, until 3 s after the last fault
    rate: float = 40.0
    outage_s: float = 3.0  # PostgreSQL stopped (fast) this long, then (immediate) 3 s
    kills: int = 1  # kill -9 and restart of daemon A
    lease_s: float = 5.0  # delivery.lease: how soon a killed daemon's rows are taken back
    settle_s: float = 60.0  # after the workload, how long everything has to become final


@dataclass
class FaultFigures:
    acked: int = 0
    lost: int = 0
    duplicates_not_allowed: int = 0
    duplicates_allowed: int = 0
    stalls: int = 0
    max_recovery_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "acked": self.acked,
            "lost": self.lost,
            "duplicates_not_allowed": self.duplicates_not_allowed,
            "duplicates_allowed": self.duplicates_allowed,
            "stalls": self.stalls,
            "max_recovery_s": round(self.max_recovery_s, 1),
        }


class FaultRun:
    def __init__(self, postgres: OwnPostgres, workdir: Path, plan: FaultPlan) -> None:
        self.pg = postgres
        self.dir = workdir
        self.plan = plan
        self.acked: set[str] = set()
        self.fault_ends: list[float] = []
        self.received_at: list[tuple[float, int]] = []  # (time, messages received so far)
        self.daemons: dict[str, tuple[DaemonProcess, dict[str, Any]]] = {}
        self._submitting = True

    async def run(self) -> FaultFigures:
        dns, mx = StubDns(), ReceivingServer()
        await dns.start()
        mx_port = free_port()
        await mx.start("127.0.0.2", mx_port, starttls=False)
        dns.add_mx("dest.test", [(10, "mx1.dest.test")])
        dns.add_a("mx1.dest.test", "127.0.0.2")
        db = await asyncpg.connect(self.pg.url)
        try:
            company = await tenants.ensure_company(db, "acme")
            await db.execute(
                "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                company,
                TEST_DOMAIN,
            )
            login = await credentials.create_smtp_login(db, company, f"app{time.time_ns()}")
            key = await credentials.create_api_key(db, company)
            for name in ("a", "b"):
                self._make(name, dns.port, mx_port)
                self._start(name)
            for name in ("a", "b"):
                await self._wait_up(name)
            watcher = asyncio.create_task(self._watch(mx))
            workload = asyncio.create_task(self._workload((login.login, login.secret), key.secret))
            await self._faults()
            await asyncio.sleep(3.0)  # mail keeps coming after the last fault
            self._submitting = False
            await workload
            await db.close()  # it did not survive the outages
            db = await asyncpg.connect(self.pg.url)
            figures = await self._account(db, mx)
            watcher.cancel()
            return figures
        finally:
            for daemon, _ in self.daemons.values():
                await asyncio.to_thread(daemon.stop)
            await db.close()
            await mx.stop()
            await dns.stop()

    # --- daemons ------------------------------------------------------------------------

    def _make(self, name: str, dns_port: int, mx_port: int) -> None:
        folder = self.dir / name
        folder.mkdir(parents=True, exist_ok=True)
        settings = daemon_settings(
            folder,
            self.pg.url,
            dns_port,
            mx_port,
            sending_domains=[],
            delivery={"lease": f"{self.plan.lease_s}s", "retry_schedule": ["1s"]},
        )
        settings["log"] = {"level": "warning", "format": "text"}
        settings["control"] = {}
        config = write_config(folder / "sendmill.toml", settings)
        self.daemons[name] = (DaemonProcess(config, folder / "daemon.log"), settings)

    def _start(self, name: str) -> None:
        self.daemons[name][0].start()

    async def _wait_up(self, name: str) -> None:
        daemon, settings = self.daemons[name]
        await daemon.wait_listening(int(settings["smtp"]["listen"].rsplit(":", 1)[1]))

    def _kill(self, name: str) -> None:
        process = self.daemons[name][0].process
        assert process is not None
        process.kill()
        process.wait()

    # --- workload and faults -----------------------------------------------------------------

    async def _workload(self, login: tuple[str, str], api_key: str) -> None:
        numbers = itertools.count()
        interval = 1.0 / self.plan.rate
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as http:
            for n in itertools.islice(numbers, self.plan.messages):
                if not self._submitting:
                    break
                await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
                daemon = "a" if n % 2 else "b"
                if not self.daemons[daemon][0].process or self.daemons[daemon][0].process.poll():
                    daemon = "a"
                rcpt = f"m{n}@dest.test"
                category = "marketing" if n % 3 == 0 else "transactional"
                with contextlib.suppress(Exception):  # refused or cut off: not acknowledged
                    if n % 2:
                        await self._smtp(daemon, login, rcpt, category)
                    else:
                        await self._http(http, daemon, api_key, rcpt, category)
                    self.acked.add(rcpt)

    async def _smtp(self, daemon: str, login: tuple[str, str], rcpt: str, category: str) -> None:
        port = int(self.daemons[daemon][1]["smtp"]["listen"].rsplit(":", 1)[1])
        message = (
            f"From: app@{TEST_DOMAIN}\r\nTo: {rcpt}\r\nSubject: fault run\r\n"
            f"X-Sendmill-Category: {category}\r\n\r\nhello {rcpt}\r\n"
        ).encode()
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=5
        ) as client:
            await client.login(*login)
            await client.sendmail(f"app@{TEST_DOMAIN}", [rcpt], message)

    async def _http(
        self, http: httpx.AsyncClient, daemon: str, key: str, rcpt: str, category: str
    ) -> None:
        listen = self.daemons[daemon][1]["http"]["listen"]
        reply = await http.post(
            f"http://{listen}/api/v1/messages",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "from": f"app@{TEST_DOMAIN}",
                "to": [rcpt],
                "subject": "fault run",
                "text": f"hello {rcpt}",
                "category": category,
                "tracking": False,
            },
        )
        reply.raise_for_status()

    async def _faults(self) -> None:
        duration = self.plan.messages / self.plan.rate
        await asyncio.sleep(min(3.0, duration * 0.15))
        for _ in range(self.plan.kills):  # kill -9 in the middle of submission and delivery
            await asyncio.sleep(random.uniform(0.0, 2.0))  # at a different point each time
            self._kill("a")
            await asyncio.sleep(0.5)
            self._start("a")
            await self._wait_up("a")
            self.fault_ends.append(time.monotonic())
            await asyncio.sleep(1.0)
        await self.pg.stop("fast")
        await asyncio.sleep(self.plan.outage_s)
        await self.pg.start()
        self.fault_ends.append(time.monotonic())
        await asyncio.sleep(2.0)
        await self.pg.stop("immediate")
        await asyncio.sleep(3.0)
        await self.pg.start()
        self.fault_ends.append(time.monotonic())
        await asyncio.sleep(2.0)
        self._kill("b")  # two daemons, one killed for good: A takes its rows back
        self.fault_ends.append(time.monotonic())

    async def _watch(self, mx: ReceivingServer) -> None:
        while True:
            self.received_at.append((time.monotonic(), len(mx.messages)))
            await asyncio.sleep(0.1)

    # --- accounting ------------------------------------------------------------------------

    async def _account(self, db: asyncpg.Connection, mx: ReceivingServer) -> FaultFigures:
        figures = FaultFigures(acked=len(self.acked))
        deadline = time.monotonic() + self.plan.settle_s
        rows: list[asyncpg.Record] = []
        while time.monotonic() < deadline:
            rows = await db.fetch(
                "SELECT r.recipient, r.state::text, (SELECT count(*) FROM attempts a"
                " WHERE a.recipient_id = r.id AND a.outcome = 'delivered') AS delivered"
                " FROM recipients r WHERE r.recipient = ANY($1::text[])",
                sorted(self.acked),
            )
            final = all(r["state"] in ("delivered", "bounced", "expired") for r in rows)
            if final and len(rows) >= len(self.acked):
                break
            await asyncio.sleep(0.5)
        received = Counter(m.rcpt_tos[0] for m in mx.messages)
        state = {r["recipient"]: r["state"] for r in rows}
        recorded = {r["recipient"]: r["delivered"] for r in rows}
        for rcpt in self.acked:
            if received[rcpt] == 0 and state.get(rcpt) not in ("bounced", "expired"):
                figures.lost += 1
            if received[rcpt] > 1:
                if recorded.get(rcpt, 0) > 1:
                    figures.duplicates_not_allowed += 1
                else:
                    figures.duplicates_allowed += 1
            if state.get(rcpt) not in ("delivered", "bounced", "expired"):
                figures.stalls += 1
        total = len(mx.messages)
        for end in self.fault_ends:
            before = next((n for t, n in reversed(self.received_at) if t <= end), 0)
            if before >= total:
                continue  # nothing was left to deliver after this fault
            after = next((t for t, n in self.received_at if t > end and n > before), None)
            figures.max_recovery_s = max(
                figures.max_recovery_s, (after - end) if after else self.plan.settle_s
            )
        return figures
