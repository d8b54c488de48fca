"""Issue 17, as a person uses it: Locust's web UI in headless Chromium starts a run from its form, and the
Capacity tab shows the run's corrected figures.

Skipped where Debian's chromium (``/usr/bin/chromium``) or the Playwright package is missing; Playwright's
own browser download does not work here, so it drives that chromium through ``executable_path``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import support

from capacity.run.exchange_process import EmbeddedExchange

ROOT = support.REPO_ROOT
sys.path.insert(0, str(ROOT / "benchmarks"))

from report_screenshot import FLAGS, find_browser  # noqa: E402  (the benchmark's browser and its flags)

CHROMIUM = find_browser()
FORM_FIELDS = ("userCount", "spawnRate", "runTime")
# CAPACITY_DOCS_SCREENSHOTS=docs/images also writes the tab's screenshot there (docs/locust.md shows it).
DOCS_SCREENSHOTS = os.environ.get("CAPACITY_DOCS_SCREENSHOTS")
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt install chromium)")
CHROMIUM_ARGS = [flag for flag in FLAGS if flag != "--headless"]  # Playwright asks for headless itself


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(120)
def test_a_run_started_from_the_form_shows_its_figures_in_the_capacity_tab(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: browser\nload: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], "
        "duration: 20s}\nslo: {p99_ms: 50, error_rate: 0.01}\n"
    )
    web = _free_port()
    with EmbeddedExchange(env={"JOURNAL_PATH": "none"}) as exchange:
        locust = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "locust"),
                "-f",
                str(ROOT / "capacity" / "generator" / "locustfile.py"),
                "--scenario",
                str(scenario),
                "--host",
                exchange.url,
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(web),
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with playwright.sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for _ in range(40):  # Locust's web server takes a moment to listen
                    try:
                        page.goto(f"http://127.0.0.1:{web}/", timeout=5000)
                        break
                    except playwright.Error:
                        page.wait_for_timeout(250)
                # the form shows the scenario (10 users, 20 s); the banner says Locust's tables are raw
                form = {name: page.locator(f'input[name="{name}"]').input_value() for name in FORM_FIELDS}
                banner = page.inner_text("#capacity-raw-note")
                page.get_by_role("button", name="Start").click()
                page.get_by_role("tab", name="Capacity").click()
                corrected = page.get_by_text("P50 / P99 / P99.9 corrected")
                corrected.wait_for(timeout=20000)
                page.wait_for_function(
                    "() => /[0-9.]+ \\/ [0-9.]+ \\/ [0-9.]+ ms/.test(document.body.innerText)", timeout=20000
                )
                text = page.inner_text("body")
                page.screenshot(path=str(tmp_path / "capacity-tab.png"))
                if DOCS_SCREENSHOTS:  # how docs/images/locust-capacity-tab.png is made
                    page.screenshot(path=str(Path(DOCS_SCREENSHOTS) / "locust-capacity-tab.png"))
                browser.close()
        finally:
            locust.terminate()
            locust.wait(timeout=30)
    assert "offered / achieved" in text and "requests/s (completions)" in text
    assert "raw response times" in text  # the note that Locust's own tables are raw
    assert form == {"userCount": "10", "spawnRate": "10", "runTime": "20s"}, form
    assert "raw" in banner and "Capacity" in banner
    assert (tmp_path / "capacity-tab.png").stat().st_size > 10_000
