"""The command line's rough edges a newcomer hit (issue 14, point 6): every option explains
itself, --config goes before or after an action, listings have a header, a pipe closed early
ends quietly, and the sending-domain commands work against a real database."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mta.cli import build_parser
from tests.support.daemon_process import write_config

SENDMILL = str(Path(sys.executable).parent / "sendmill")
ROOT = Path(__file__).resolve().parent.parent.parent


def _options_without_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _options_without_help(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
    return missing


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SENDMILL, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )


def test_every_option_and_argument_has_help_text() -> None:
    assert _options_without_help(build_parser(), "sendmill") == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "F", "queue", "retry", "--all"],
        ["queue", "--config", "F", "retry", "--all"],
        ["queue", "retry", "--config", "F", "--all"],
        ["credentials", "list", "--config", "F"],
    ],
)
def test_config_is_taken_wherever_it_is_given(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).config == "F"
    assert build_parser().parse_args(["queue", "retry", "--all"]).config is None


def test_bounce_parse_into_a_pipe_closed_early_ends_quietly() -> None:
    # --json over the corpus prints more than a pipe holds, so the writer meets the closed end.
    process = subprocess.Popen(
        [SENDMILL, "bounce", "parse", "--json", "tests/data/bounces"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"{")
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(30) == 0
    assert errors == ""


def test_credentials_list_has_a_header_and_domains_commands_manage_a_domain(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "sendmill.toml",
        {"secret": "s", "state_dir": str(tmp_path / "state"), "database": {"url": database_url}},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDMILL_")}
    listed = run("credentials", "list", "--config", str(config), env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["id", "kind", "company", "login", "/", "key", "status"]

    added = run(
        "domains",
        "add",
        "news.globex.test",
        "--company",
        "globex",
        "--config",
        str(config),
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "not sendable yet" in added.stdout
    assert 'news.globex.test. IN TXT "v=spf1' in added.stdout
    shown = run("dkim", "show", "news.globex.test", "--config", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()
    assert '._domainkey.news.globex.test. IN TXT "v=DKIM1; k=rsa; p=' in line
    assert line.count('"') == 4 and line.endswith("; pending")  # two strings of ≤ 255
    listing = run("domains", "list", "--config", str(config), env=env)
    assert listing.stdout.split() == ["news.globex.test", "globex", "api", "pending"]
    gone = run("domains", "delete", "news.globex.test", "--config", str(config), env=env)
    assert gone.returncode == 0, gone.stderr
    missing = run("dkim", "show", "news.globex.test", "--config", str(config), env=env)
    assert missing.returncode == 1 and "no sending domain news.globex.test" in missing.stderr


def test_init_writes_a_config_that_checks_and_a_private_secret(tmp_path: Path) -> None:
    target = tmp_path / "etc"
    made = run("init", str(target), "--hostname", "mta1.example.com")
    assert made.returncode == 0, made.stderr
    env_file = target / "env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    secret = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if line[:1] != "#"
    )
    assert len(secret["SENDMILL_SECRET"]) == 64
    config = (target / "sendmill.toml").read_text()
    assert 'hostname = "mta1.example.com"' in config
    assert "@HOSTNAME@" not in config and "@STATE_DIR@" not in config
    assert f'state_dir = "{target / "state"}"' in config
    assert (target / "state").is_dir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SENDMILL_")}, **secret}
    checked = run("check-config", "--config", str(target / "sendmill.toml"), env=env)
    assert checked.returncode == 0, checked.stderr
    again = run("init", str(target))
    assert again.returncode == 1 and "exists" in again.stderr
