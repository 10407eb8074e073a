"""A daemon with one receiving MX for dest.test, and one message delivered through it: the
starting point of the bounce tests."""

from __future__ import annotations

from typing import Any

from tests.support.delivery import submit, wait_final


async def daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port, **overrides: Any):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(**overrides)
    return daemon, mx


async def delivered(daemon, to: str) -> dict:
    """Send one message to `to` and wait until it is delivered; its recipient row."""
    before = await daemon.db.fetchval("SELECT count(*) FROM recipients")
    await submit(daemon, [to])
    rows = await wait_final(daemon, before + 1)
    row = rows[-1]
    assert row["state"] == "delivered", row
    return row
