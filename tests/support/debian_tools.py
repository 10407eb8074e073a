"""Debian tools some tests run against (swaks, Postfix, OpenDKIM, Mail::DKIM): installed on
demand when the tests run as root with apt-get, else the tests skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# command (or perl module) -> Debian package that provides it
TOOLS = {
    "swaks": "swaks",
    "smtp-source": "postfix",
    "postfix": "postfix",
    "opendkim": "opendkim",
    "perl:Mail::DKIM": "libmail-dkim-perl",
    "perl:Net::SSLeay": "libnet-ssleay-perl",
    "chromium": "chromium",
}
INSTALL_TIMEOUT = 600


def _present(tool: str) -> bool:
    if tool.startswith("perl:"):
        module = tool.removeprefix("perl:")
        return (
            shutil.which("perl") is not None
            and subprocess.run(["perl", f"-M{module}", "-e", "1"], capture_output=True).returncode
            == 0
        )
    return shutil.which(tool) is not None or os.path.exists(f"/usr/sbin/{tool}")


def missing(tools: list[str]) -> list[str]:
    return [t for t in tools if not _present(t)]


def require(*tools: str) -> None:
    """Make sure the tools are there, installing their Debian packages if we can; else skip."""
    absent = missing(list(tools))
    if not absent:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"needs {', '.join(absent)} (Debian packages; run as root to install them)")
    packages = sorted({TOOLS[t] for t in absent})
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        try:
            subprocess.run(command, env=env, capture_output=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            break
        if not missing(list(tools)):
            return
    pytest.skip(f"could not install {', '.join(packages)} with apt-get")
