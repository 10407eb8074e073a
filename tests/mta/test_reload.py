"""SIGHUP (systemd's ExecReload) re-reads the configuration while mail flows: a changed limit
applies to the next sessions, the open session carries on, nothing accepted is lost; a broken
config is refused with a log line and the running one stays (issue 14)."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import time
from pathlib import Path

import aiosmtplib
import asyncpg

from mta import credentials, reload, tenants
from mta.config import build_config
from mta.logs import JsonFormatter
from tests.support.daemon_process import DaemonProcess, write_config
from tests.support.fixtures_daemon import TEST_DOMAIN, daemon_settings


def _message(i: int, size: int = 0) -> bytes:
    filler = ("x" * 70 + "\r\n") * (size // 72)
    return (
        f"From: app@{TEST_DOMAIN}\r\nTo: u{i}@dest.test\r\nSubject: n{i}\r\n\r\n"
        f"message {i}\r\n{filler}"
    ).encode()


async def _send(port: int, login: tuple[str, str], i: int, size: int = 0) -> str:
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=False, timeout=10
    ) as client:
        await client.login(*login)
        try:
            await client.sendmail(f"app@{TEST_DOMAIN}", [f"u{i}@dest.test"], _message(i, size))
        except aiosmtplib.SMTPResponseException as exc:
            return str(exc.code)
    return "250"


async def _wait_for(log: Path, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in (content := await asyncio.to_thread(log.read_text)):
        assert time.monotonic() < deadline, content
        await asyncio.sleep(0.1)


async def test_sighup_applies_a_changed_limit_refuses_a_broken_config_and_loses_nothing(
    tmp_path, database_url, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port, starttls=False)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    db = await asyncpg.connect(database_url)
    company = await tenants.ensure_company(db, "acme")
    issued = await credentials.create_smtp_login(db, company, "app")
    login = (issued.login, issued.secret)
    settings = daemon_settings(
        tmp_path, database_url, dns_server.port, mx_port, smtp={"max_message_size": 100_000}
    )
    settings["log"] = {"level": "info", "format": "text"}
    config = write_config(tmp_path / "sendmill.toml", settings)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    port = int(settings["smtp"]["listen"].rsplit(":", 1)[1])
    daemon.start()
    try:
        await daemon.wait_listening(port)
        await _wait_for(daemon.log, "sendmill is up")
        # Start-up names every listener once, with the date on every line, and no warning.
        started = daemon.log.read_text().splitlines()
        for name, address in (
            ("SMTP submission", settings["smtp"]["listen"]),
            ("SMTP submissions", settings["smtp"]["listen_tls"]),
            ("SMTP bounce", settings["bounce"]["listen"]),
            ("HTTP API (submission, /metrics)", settings["http"]["listen"]),
            ("tracker", settings["tracker"]["listen"]),
            ("control API", settings["control"]["listen"]),
        ):
            wanted = f"{name} listening on {address}"
            assert sum(line.endswith(wanted) for line in started) == 1, (wanted, started)
        assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", x) for x in started)
        assert not [x for x in started if "WARNING" in x or "Warning" in x]
        assert await _send(port, login, 0, size=50_000) == "250"

        # One session stays open across both reloads, sending all along.
        accepted = 1
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=10
        ) as open_session:
            await open_session.login(*login)

            async def send_on_open_session(first: int, n: int) -> None:
                nonlocal accepted
                for i in range(first, first + n):
                    await open_session.sendmail(
                        f"app@{TEST_DOMAIN}", [f"u{i}@dest.test"], _message(i)
                    )
                    accepted += 1

            await send_on_open_session(100, 5)
            settings["smtp"]["max_message_size"] = 20_000
            settings["smtp"]["max_recipients"] = 50
            write_config(config, settings)
            daemon.process.send_signal(signal.SIGHUP)
            await send_on_open_session(200, 5)
            await _wait_for(daemon.log, "configuration reloaded")
            assert daemon.process.poll() is None
            log = daemon.log.read_text()
            assert "applied smtp.max_message_size, smtp.max_recipients" in log
            assert await _send(port, login, 1, size=50_000) == "552"  # the new limit
            assert await _send(port, login, 2) == "250"
            accepted += 1

            config.write_text(config.read_text() + "\n[smtp]\nno_such_key = 1\n")
            daemon.process.send_signal(signal.SIGHUP)
            await _wait_for(daemon.log, "reload refused, the running configuration stays")
            await send_on_open_session(300, 5)
            assert daemon.process.poll() is None
            assert await _send(port, login, 3, size=50_000) == "552"  # still the reloaded one
            assert await _send(port, login, 4) == "250"
            accepted += 1

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivered = await db.fetchval(
                "SELECT count(*) FROM recipients WHERE state = 'delivered'"
            )
            if delivered >= accepted:
                break
            await asyncio.sleep(0.2)
        assert delivered == accepted == 18
        assert len(mx.messages) == accepted
    finally:
        assert daemon.stop() == 0
        await db.close()


def test_changes_name_each_key_and_say_which_need_a_restart() -> None:
    old = build_config({"smtp": {"max_recipients": 10}, "log": {"level": "info"}})
    new = build_config(
        {
            "smtp": {"max_recipients": 20},
            "log": {"level": "debug"},
            "delivery": {"processes": 2},
            "routes": [{"domain": "x.test", "host": "127.0.0.1"}],
        }
    )
    found = reload.changes(old, new)
    assert found.live == ("smtp.max_recipients", "log.level")
    assert found.restart == ("delivery.processes", "routes")
    assert not reload.changes(old, old)


def test_json_log_lines_carry_no_colour_codes() -> None:
    record = logging.makeLogRecord(
        {"msg": "Started server process [%d]", "args": (7,), "color_message": "\x1b[36m%d\x1b[0m"}
    )
    line = JsonFormatter().format(record)
    assert "\\u001b" not in line and "\x1b" not in line and "color_message" not in line
