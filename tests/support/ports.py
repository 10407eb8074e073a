"""Ports for the listeners tests start.

Chosen below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
default), where port 0 would pick: there an outgoing connection — a PostgreSQL client, an
HTTP client — could take the port between its choice and the listener's bind. A port handed
out once is not handed out again in this test session, and one found bound is skipped.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20_000, 32_000
_given: set[int] = set()
_pick = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now and no other test of this session was given."""
    for _ in range(1000):
        port = _pick.randrange(LOW, HIGH)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH}")
