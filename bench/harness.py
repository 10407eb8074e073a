"""What the benchmarks share: ports for the servers they start, waiting for a listener, and
stopping the embedded PostgreSQL a bench's daemon started."""

from __future__ import annotations

import socket
import time
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float = 60) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`; RuntimeError after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def stop_database(state: Path) -> None:
    """The embedded PostgreSQL outlives the daemon on purpose (mta/database.py): a bench stops
    the one it joined, so no server is left running on bench/out."""
    import pgserver

    server = pgserver.get_server((state / "pgdata").absolute())
    server.cleanup_mode = "stop"
    server.cleanup()
