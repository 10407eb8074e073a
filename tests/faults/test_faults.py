"""The fault suite, short version (CI): real `sendmill serve` processes, a real PostgreSQL,
real sockets; kill -9, PostgreSQL stopped fast and immediate, one of two daemons killed for
good (tests/support/fault_run.py). `bench/faults.py` runs the long version (30 s outage,
several kills, more mail). Hostile receivers are tests/mta/test_hostile_receivers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fault_run import FaultPlan, FaultRun
from tests.support.own_postgres import OwnPostgres

pytestmark = pytest.mark.faults


async def test_every_acknowledged_message_arrives_through_kills_and_postgresql_outages(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    plan = FaultPlan(messages=600, rate=20.0, outage_s=3.0, kills=1, lease_s=5.0, settle_s=60)
    figures = await FaultRun(own_postgres, tmp_path, plan).run()
    found = figures.as_dict()
    assert figures.acked >= 100, found  # submission works between the faults
    assert figures.lost == 0, found
    assert figures.duplicates_not_allowed == 0, found
    assert figures.stalls == 0, found
    # The target is 10 s and most runs recover within ~1 s; a run of the long version once
    # took 20 s after one fault (not yet understood, issue 11): CI holds the line at 30 s.
    assert figures.max_recovery_s <= 30, found
