"""The `sendmill` command line as an operator uses it, against a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SENDMILL = str(Path(sys.executable).parent / "sendmill")
ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    [],
    ["serve"],
    ["migrate"],
    ["check-config"],
    ["dkim", "generate"],
    ["credentials", "create"],
    ["credentials", "list"],
    ["credentials", "revoke"],
    ["queue"],
    ["queue", "retry"],
    ["queue", "hold"],
    ["queue", "release"],
    ["queue", "delete"],
    ["send"],
]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SENDMILL, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sendmill")
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: sendmill" in result.stdout


def test_dkim_generate_writes_a_private_key_and_prints_the_record(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    result = run("dkim", "generate", "example.com", "--selector", "s1", "--out", str(key))
    assert result.returncode == 0, result.stderr
    assert 's1._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p=' in result.stdout
    assert key.stat().st_mode & 0o777 == 0o600
    assert run("dkim", "generate", "example.com", "--selector", "s1", "--out", str(key)).returncode


def test_credentials_and_queue_commands_work_on_the_database(
    database_url: str, tmp_path: Path
) -> None:
    import os

    env = {
        **os.environ,
        "SENDMILL_DATABASE__URL": database_url,
        "SENDMILL_STATE_DIR": str(tmp_path),
    }
    created = run("credentials", "create", "--company", "acme", "--kind", "api", env=env)
    assert created.returncode == 0, created.stderr
    assert "sm_" in created.stdout
    listed = run("credentials", "list", env=env)
    assert "acme" in listed.stdout and "active" in listed.stdout
    counts = run("queue", env=env)
    assert counts.returncode == 0 and "total" in counts.stdout
    held = run("queue", "hold", "--domain", "nothing.test", env=env)
    assert held.returncode == 0 and "hold: 0 recipients" in held.stdout
    assert "queue hold: 0" in held.stderr  # the progress line
    refused = run("queue", "delete", env=env)
    assert refused.returncode == 2  # no filter: refuse to act on everything by accident


def test_a_broken_config_is_reported_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisen = "127.0.0.1:25"\n')
    result = run("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "unknown key(s) lisen" in result.stderr
