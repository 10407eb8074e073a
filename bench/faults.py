"""bench/faults: the fault suite, long version (tests/faults runs the short one in CI).

Each run starts a PostgreSQL of its own and two `sendmill serve` processes on it, submits a
mixed workload (SMTP and HTTP, transactional and marketing) to a receiving MX on loopback, and
meanwhile kills daemon A with SIGKILL `--kills` times at random moments, stops PostgreSQL (fast)
for `--outage` seconds and (immediate) for 3 s, and kills daemon B for good; then accounts for
every acknowledged message (tests/support/fault_run.py says how). Targets: lost 0,
duplicates_not_allowed 0, stalls 0, max_recovery_s <= 10.

Usage: .venv/bin/python -m bench.faults [--runs 3] [--outage 30] [--kills 3] [--rate 30]
The last output line is one JSON object: {"acked", "lost", "duplicates_not_allowed",
"duplicates_allowed", "stalls", "max_recovery_s"} over all runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fault_run import FaultFigures, FaultPlan, FaultRun  # noqa: E402
from tests.support.own_postgres import OwnPostgres  # noqa: E402

OUT = ROOT / "bench" / "out" / "faults"


async def one_run(index: int, plan: FaultPlan) -> FaultFigures:
    import asyncpg
    import pgserver

    from mta import database

    folder = OUT / f"run{index}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    server = await asyncio.to_thread(pgserver.get_server, folder / "pgdata", cleanup_mode="stop")
    postgres = OwnPostgres(server, server.get_uri())
    try:
        conn = await asyncpg.connect(server.get_uri())
        try:
            await database.migrate(conn)
        finally:
            await conn.close()
        return await FaultRun(postgres, folder, plan).run()
    finally:
        await postgres.shut_down()


async def main(args: argparse.Namespace) -> dict:
    plan = FaultPlan(
        messages=args.messages,
        rate=args.rate,
        outage_s=args.outage,
        kills=args.kills,
        lease_s=args.lease,
        settle_s=args.settle,
    )
    total = FaultFigures()
    for index in range(args.runs):
        figures = await one_run(index, plan)
        print(f"run {index}: {json.dumps(figures.as_dict())}", flush=True)
        total.acked += figures.acked
        total.lost += figures.lost
        total.duplicates_not_allowed += figures.duplicates_not_allowed
        total.duplicates_allowed += figures.duplicates_allowed
        total.stalls += figures.stalls
        total.max_recovery_s = max(total.max_recovery_s, figures.max_recovery_s)
    return total.as_dict()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000, help="at most, per run")
    parser.add_argument("--rate", type=float, default=30.0, help="submissions per second")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds PostgreSQL is down")
    parser.add_argument("--kills", type=int, default=3, help="kill -9 of daemon A per run")
    parser.add_argument("--lease", type=float, default=10.0, help="delivery.lease, seconds")
    parser.add_argument("--settle", type=float, default=180.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
