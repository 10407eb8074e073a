"""The embedded PostgreSQL (the `pgserver` package) in `<state_dir>/pgdata`, and its lifecycle.

Every process that uses it (the daemon, its service processes, a CLI command) holds a handle,
which pgserver counts in `pgdata/.handle_pids.json`; the last one to exit stops the server. So
the daemon stops the server it started when it exits, unless another daemon or a CLI command
still uses it, and a CLI command leaves nothing running behind it. A process killed with
SIGKILL cannot take its handle back: the next process to start prunes handles of processes
that are gone, so the server is still stopped by the last live user.

`sendmill db start` marks the server as the operator's (`pgdata/.sendmill-operator`): it then
runs until `sendmill db stop`, whoever comes and goes. pgserver's own messages (initdb's output
among them) go to `<state_dir>/postgres-setup.log`, the server's log to `pgdata/log`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

OPERATOR_MARK = ".sendmill-operator"
HANDLES = ".handle_pids.json"
SETUP_LOG = "postgres-setup.log"


class EmbeddedPostgresError(Exception):
    """The embedded server cannot be started or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    pgdata: Path
    initialised: bool
    running_pid: int | None
    users: tuple[int, ...]  # live processes holding a handle
    operator_started: bool


def pgdata_of(state_dir: Path) -> Path:
    return (state_dir / "pgdata").absolute()


def url(state_dir: Path, cleanup_mode: str | None = "auto") -> str:
    """Start (or join) the embedded server and return its URL. "auto": stopped by the last
    process using it, unless the operator started it (`sendmill db start`)."""
    pgdata = pgdata_of(state_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    pgserver = _pgserver(state_dir)
    if cleanup_mode == "auto":
        cleanup_mode = None if (pgdata / OPERATOR_MARK).exists() else "stop"
    with pgserver.PostgresServer._lock:
        _prune_handles(pgdata)
    return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode).get_uri()


def status(state_dir: Path) -> ServerStatus:
    pgdata = pgdata_of(state_dir)
    return ServerStatus(
        pgdata,
        (pgdata / "PG_VERSION").exists(),
        _postmaster_pid(pgdata),
        tuple(p for p in _handles(pgdata) if _alive(p) and p != os.getpid()),
        (pgdata / OPERATOR_MARK).exists(),
    )


def start(state_dir: Path) -> str:
    """Start the server for the operator: it runs until `stop`."""
    pgdata = pgdata_of(state_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    (pgdata / OPERATOR_MARK).touch()
    return url(state_dir, cleanup_mode=None)


def stop(state_dir: Path, *, force: bool = False) -> None:
    """Stop the server; refused while live processes use it, unless `force`."""
    pgdata = pgdata_of(state_dir)
    current = status(state_dir)
    if current.users and not force:
        pids = ", ".join(map(str, current.users))
        raise EmbeddedPostgresError(
            f"the embedded PostgreSQL is in use by process(es) {pids}; stop them first "
            "(or --force, which cuts them off)"
        )
    (pgdata / OPERATOR_MARK).unlink(missing_ok=True)
    if current.running_pid is None:
        return
    pgserver = _pgserver(state_dir)
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs it so when root
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError as exc:
        raise EmbeddedPostgresError(f"pg_ctl stop failed: {exc}") from None
    with pgserver.PostgresServer._lock:
        (pgdata / HANDLES).unlink(missing_ok=True)


def _pgserver(state_dir: Path) -> ModuleType:
    # pgserver takes its lock file under $XDG_RUNTIME_DIR when imported; platformdirs warns and
    # falls back when it is unset (a service or a container). Every process of this user must
    # agree on the lock, so the fallback is one fixed, private directory.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"sendmill-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        if runtime.stat().st_uid == os.getuid():
            runtime.chmod(0o700)  # platformdirs refuses (and warns about) anything wider
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    _log_setup_to_file(state_dir)
    import pgserver

    return pgserver


def _log_setup_to_file(state_dir: Path) -> None:
    """pgserver's chatter (initdb's output, pg_ctl's) to a file, not to the daemon's log."""
    logger = logging.getLogger("pgserver")
    if logger.handlers:
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(state_dir / SETUP_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _handles(pgdata: Path) -> list[int]:
    try:
        return [int(p) for p in json.loads((pgdata / HANDLES).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _prune_handles(pgdata: Path) -> None:
    """Drop the handles of processes that are gone (killed before they could say so)."""
    pids = _handles(pgdata)
    live = [p for p in pids if _alive(p)]
    if live != pids:
        (pgdata / HANDLES).write_text(json.dumps(live))


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's (the pgserver user when run as root)
    return True
