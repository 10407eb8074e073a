"""The embedded PostgreSQL's lifecycle (issue 14): a CLI command leaves no server running, the
daemon stops the server it started when it exits, `sendmill db start` keeps one for the
operator until `sendmill db stop`, and pgserver's setup output goes to a file, not the log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mta import embedded_postgres
from tests.support.daemon_process import SENDMILL, DaemonProcess, write_config
from tests.support.fixtures_daemon import daemon_settings

pytestmark = pytest.mark.slow  # each test starts a PostgreSQL of its own (initdb: seconds)


def _sendmill(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SENDMILL, *args[:2], "--config", str(config), *args[2:]],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _running(state: Path) -> bool:
    return embedded_postgres.status(state).running_pid is not None


def test_cli_commands_leave_no_server_and_db_start_keeps_one_until_db_stop(tmp_path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "sendmill.toml", {"state_dir": str(state), "secret": "s"})

    migrated = _sendmill(config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "applied mta/0001_queue" in migrated.stdout
    assert not _running(state)
    assert "Running commandline" not in migrated.stderr  # initdb's chatter is in the file
    assert "initdb" in (state / embedded_postgres.SETUP_LOG).read_text()
    assert "XDG_RUNTIME_DIR" not in migrated.stderr
    assert _sendmill(config, "db", "status").returncode == 3

    started = _sendmill(config, "db", "start")
    assert started.returncode == 0, started.stderr
    assert _running(state)
    assert _sendmill(config, "credentials", "list").returncode == 0
    assert _running(state)  # the operator's server outlives the commands that used it
    status = _sendmill(config, "db", "status")
    assert status.returncode == 0 and "sendmill db start" in status.stdout

    stopped = _sendmill(config, "db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not _running(state)


async def test_the_daemon_stops_the_embedded_server_it_started(
    tmp_path, database_url, dns_server, mx_port
) -> None:
    settings = daemon_settings(tmp_path, database_url, dns_server.port, mx_port)
    settings["database"] = {"pool_size": 4}  # no url: the embedded server
    settings["log"] = {"level": "info", "format": "text"}
    state = Path(settings["state_dir"])
    daemon = DaemonProcess(write_config(tmp_path / "sendmill.toml", settings), tmp_path / "log")
    daemon.start()
    try:
        await daemon.wait_listening(int(settings["smtp"]["listen"].rsplit(":", 1)[1]))
        assert _running(state)
        assert daemon.process.pid in embedded_postgres.status(state).users
    finally:
        assert daemon.stop() == 0
    assert not _running(state)
    assert "pgserver" not in daemon.log.read_text()
