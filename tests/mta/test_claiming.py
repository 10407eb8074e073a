"""The claim loop: how much work one delivery engine holds, and what it costs while it waits."""

from __future__ import annotations

import asyncio
import time

from mta import queue, tenants
from mta.queue import Submission
from tests.support.fixtures_daemon import TEST_DOMAIN


async def test_a_full_backlog_waits_without_spinning_a_core(
    daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.accept_delay = 4.0  # every transaction hangs after the dot: rows stay held
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(
        limits={"default": {"connections": 2}},
        delivery={"batch_size": 5, "poll_interval": "0.2s"},
    )
    engine = daemon.engines[0]
    company = await tenants.ensure_company(daemon.db, "acme")
    await queue.enqueue(
        daemon.db,
        Submission(
            company_id=company,
            credential_id=None,
            mail_from=f"app@{TEST_DOMAIN}",
            from_domain=TEST_DOMAIN,
            recipients=[f"r{i}@dest.test" for i in range(60)],
            body=f"From: app@{TEST_DOMAIN}\r\nSubject: hi\r\n\r\nhi\r\n".encode(),
        ),
        3600,
    )
    deadline = time.monotonic() + 5
    while engine.backlog < 4 * 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert engine.backlog >= 20  # more than 4 x batch_size held: the claim loop must wait

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(1.5)
    share = (time.process_time() - cpu) / (time.monotonic() - wall)
    assert engine.backlog >= 20 and not mx.messages  # still waiting on the receiver
    # Measured before the fix: 0.99 of a core on an idle machine; waiting costs ~0.01.
    assert share < 0.2, f"{share:.2f} of a core while waiting"
