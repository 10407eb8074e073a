"""The `sendmill` command line as an operator uses it, against a real database."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mta.cli import build_parser

SENDMILL = str(Path(sys.executable).parent / "sendmill")
ROOT = Path(__file__).resolve().parent.parent.parent


def _commands(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
    """Every command and subcommand the parser knows, walked from its subparsers."""
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, [*prefix, name])
    return found


COMMANDS = _commands(build_parser(), [])


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SENDMILL, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sendmill")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: sendmill")
    assert len(shown.splitlines()) > 2, "the help says nothing beyond its usage line"


def test_the_installed_command_shows_help() -> None:
    result = run("queue", "retry", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: sendmill queue retry" in result.stdout


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
