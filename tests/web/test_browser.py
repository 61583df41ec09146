"""The example page in a real browser: Debian's chromium, driven by Playwright, clicks
"export" and watches the progress bar reach 100 %. Fails (never skips) when chromium
cannot run: scripts/ensure-chromium installs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from offload.testing import wait_for
from tests.after_response.servers import free_port
from tests.fixtures.processes import ROOT, worker_env
from tests.web.servers import SECRET

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def example_server(tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    """``uvicorn examples.status_page:web`` on a free loopback port; yields its base URL."""
    port = free_port()
    env = worker_env(sqlite_url, tmp_path / "ledger.db")
    env.update(OFFLOAD_SECRET=SECRET, EXPORT_ROWS="12", EXPORT_PAUSE="0.05")
    log = open(tmp_path / "example.log", "ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "examples.status_page:web"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if popen.poll() is not None:
            raise RuntimeError((tmp_path / "example.log").read_text(errors="replace"))
        try:
            return httpx.get(base + "/", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout=30, interval=0.05, what="the example to answer")
        yield base
    finally:
        popen.terminate()
        popen.wait(30)
        log.close()


def test_the_example_page_shows_an_export_reaching_100_percent(
    example_server: str, tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            # Console errors (a CSP violation is one), and failed loads but the favicon.
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and not m.text.startswith("Failed to load resource")
                    and problems.append(m.text)
                ),
            )
            page.on(
                "response",
                lambda r: (
                    r.status >= 400
                    and not r.url.endswith("/favicon.ico")
                    and problems.append(f"{r.status} {r.url}")
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(example_server + "/")
            page.get_by_role("button", name="export").click()
            page.wait_for_url("**/exports/*")
            status = page.locator("#export-status")
            status.wait_for()
            page.wait_for_function(
                "() => document.querySelector('[data-offload-bar]').value > 0",
                timeout=30_000,
            )
            page.screenshot(path=str(tmp_path / "export-running.png"))
            page.wait_for_function(
                "() => document.querySelector('#export-status').dataset.state === 'succeeded'",
                timeout=60_000,
            )
            bar = page.locator("[data-offload-bar]")
            assert bar.evaluate("el => el.value") == 100
            assert page.locator("[data-offload-percent]").inner_text() == "100 %"
            assert page.locator("[data-offload-message]").inner_text() == "done"
            assert page.locator("[data-offload-log] li").all_inner_texts() == [
                "exporting sales",
                "done",
            ]
            page.screenshot(path=str(tmp_path / "export-done.png"))
        finally:
            browser.close()
    assert problems == []  # no script error, no Content-Security-Policy violation
    assert (tmp_path / "export-done.png").stat().st_size > 0
