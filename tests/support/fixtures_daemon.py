"""Fixtures that run the whole daemon: in-process (same event loop) for most end-to-end tests,
or as a `sendmill serve` subprocess when a test must kill it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mta.config import Config, build_config
from mta.daemon import Daemon
from tests.support.ports import free_port

TEST_DOMAIN = "example.test"


def daemon_settings(
    tmp_path: Path, database_url: str, dns_port: int, mx_port: int, **overrides: Any
) -> dict[str, Any]:
    """A complete test config as a TOML-shaped dict: free ports, the stub DNS, fast retries."""
    tracker_port = free_port()
    settings: dict[str, Any] = {
        "hostname": "sendmill.test",
        "state_dir": str(tmp_path / "state"),
        "secret": "test-secret",
        "database": {"url": database_url, "pool_size": 10},
        "smtp": {
            "listen": f"127.0.0.1:{free_port()}",
            "listen_tls": f"127.0.0.1:{free_port()}",
            "plaintext_auth_on_loopback": True,
        },
        "http": {"listen": f"127.0.0.1:{free_port()}"},
        "control": {"listen": f"127.0.0.1:{free_port()}"},
        "tracker": {
            "listen": f"127.0.0.1:{tracker_port}",
            "base_url": f"http://127.0.0.1:{tracker_port}",
        },
        "bounce": {"domain": "bounces.sendmill.test", "listen": f"127.0.0.1:{free_port()}"},
        "delivery": {
            "port": mx_port,
            "poll_interval": "0.2s",
            "retry_schedule": ["1s"],
            "max_age": "1h",
            "lease": "30s",
            "connect_timeout": "2s",
            "idle_timeout": "0.5s",
        },
        "dns": {"resolvers": [f"127.0.0.1:{dns_port}"], "timeout": "2s"},
        "log": {"level": "warning", "format": "text"},
        "sending_domains": [
            {
                "domain": TEST_DOMAIN,
                "company": "acme",
                "dkim": [
                    {
                        "selector": "sm1",
                        "key_file": str(tmp_path / "dkim" / "sm1.pem"),
                        "algorithm": "rsa-sha256",
                    }
                ],
            }
        ],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings


@pytest.fixture
def mx_port() -> int:
    """The port every test MX server listens on (delivery.port is one number for all MX)."""
    return free_port()


@pytest.fixture
async def daemon_factory(
    tmp_path: Path, database_url: str, dns_server: Any, mx_port: int
) -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    started: list[Daemon] = []

    async def start(**overrides: Any) -> Daemon:
        config: Config = build_config(
            daemon_settings(tmp_path, database_url, dns_server.port, mx_port, **overrides)
        )
        daemon = Daemon(config)
        await daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        await daemon.stop(grace=5)
