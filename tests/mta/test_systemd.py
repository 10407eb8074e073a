"""The shipped systemd unit is hardened and, where systemd-analyze exists, verifies."""

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent.parent / "systemd" / "sendmill.service"


def _settings() -> dict[str, str]:
    settings = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_unit_is_hardened_with_only_the_bind_capability() -> None:
    s = _settings()
    assert s["ProtectSystem"] == "strict"
    assert s["NoNewPrivileges"] == "yes"
    assert s["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert s["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert s["User"] == "sendmill"
    assert s["KillSignal"] == "SIGTERM"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    # Missing user/binary on a build machine is reported, syntax errors are what we look for.
    problems = [
        line
        for line in result.stderr.splitlines()
        if "Unknown" in line or "Failed to parse" in line or "Invalid" in line
    ]
    assert not problems, result.stderr
