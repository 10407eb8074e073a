"""Driving the web console in Debian's headless Chromium (Playwright for Python with
`executable_path`: Playwright's own browser download does not work here): the console built
with npm when missing, axe-core (from the console's npm dev dependencies) run in each page, and
screenshots at desktop and phone widths saved under tests/artifacts/console/ (gitignored)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import debian_tools

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "control" / "console"
AXE = CONSOLE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
SERIOUS = {"serious", "critical"}


def require_console_and_browser() -> None:
    """Skip with the reason unless Playwright, Chromium and the built console (with axe-core)
    are there; builds the console and installs Chromium (as root, with apt-get) when it can."""
    pytest.importorskip("playwright.async_api", reason="playwright is in the test extras")
    debian_tools.require("chromium")
    if not (CONSOLE / "dist" / "index.html").is_file() or not AXE.is_file():
        if shutil.which("npm") is None:
            pytest.skip("the console is not built and npm is missing (./dev console builds it)")
        subprocess.run([str(ROOT / "dev"), "console"], check=True, timeout=600)


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The serious and critical axe-core violations of the page as it is now. axe is evaluated
    through the DevTools protocol, which the console's CSP does not govern (an injected script
    tag would be refused, as it should be)."""
    await page.evaluate(AXE.read_text())
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [v for v in result if v["impact"] in SERIOUS]


async def check_page(page: Any, name: str, fits_phone: bool = True) -> None:
    """Scan the page with axe, then save it at desktop and phone widths; fails on a serious or
    critical violation or, unless `fits_phone` is False, on content wider than the phone."""
    violations = await axe_violations(page)
    assert not violations, f"{name}: accessibility violations {violations}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size(DESKTOP)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.wait_for_timeout(250)  # charts follow the new width on their next resize
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    await page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)
    if fits_phone:
        assert overflow <= PHONE["width"], f"{name}: {overflow} px wide on a {PHONE['width']} px"
