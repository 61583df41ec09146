"""The dashboard in a real browser (Debian's chromium driven by Playwright), on SQLite and
PostgreSQL: a job is enqueued, watched progressing live on its page, fails, is retried
from the dashboard, and cancelled while it runs again; the schedules and services pages
follow a worker's fires and requests. Every step is saved as a
screenshot under ``test-artifacts/dashboard/<store>/`` of the checkout (or under
``$OFFLOAD_TEST_ARTIFACTS``), replaced by the next run and printed,
and the browser must report no console error, so no Content-Security-Policy violation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from offload import Offload
from offload.types import JobState
from tests.fixtures import processes
from tests.fixtures.processes import ROOT
from tests.web import apps
from tests.web.conftest import Live
from tests.web.servers import WebServer
from tests.web.test_browser import CHROMIUM

#: Generous: the machine may be loaded.
WAIT_MS = 60_000


def _watch_problems(page: Any, problems: list[str]) -> None:
    # Console errors and warnings (a CSP violation is one); failed loads are caught by
    # the response handler, which forgives only the favicon.
    page.on(
        "console",
        lambda m: (
            m.type in ("error", "warning")
            and not m.text.startswith("Failed to load resource")
            and problems.append(f"console: {m.text}")
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
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))


def artifacts(name: str) -> Path:
    """A fresh directory for this run's screenshots, kept after the run (pytest's
    temporary directories are rotated away by later runs)."""
    import shutil

    base = Path(os.environ.get("OFFLOAD_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    out = base / "dashboard" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def test_a_job_watched_failed_retried_and_cancelled_from_the_dashboard(
    web_app: Offload, server: WebServer, tmp_path: Path, store_url: str
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    shots = artifacts("sqlite" if store_url.startswith("sqlite") else "postgres")
    print(f"\ndashboard screenshots: {shots}")
    gates = tmp_path / "gates"
    gates.mkdir()
    job = apps.flaky.enqueue(str(gates))
    worker = processes.start(
        "worker", web_app.settings.url, tmp_path / "ledger.db", tmp_path / "worker.log",
        app="tests.web.apps:app", args=["--queues", "browser", "--concurrency", "1"],
    )  # fmt: skip
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(WAIT_MS)
                _watch_problems(page, problems)
                state = page.locator("#state")

                # Given a job running its first attempt, watched on its page.
                page.goto(f"{server.base}/jobs/{job.id}")
                for step in range(1, apps.STEPS + 1):
                    # The page updates itself (htmx polling): no reload here.
                    expect(page.locator("#progress-text")).to_have_text(f"{step} / {apps.STEPS}")
                    expect(state).to_have_attribute("data-state", "running")
                    page.screenshot(path=str(shots / f"1-running-step-{step}.png"))
                    (gates / f"a1-step-{step}").touch()

                # When it fails, the page shows the error and its traceback.
                expect(state).to_have_attribute("data-state", "failed")
                expect(page.locator("#error")).to_contain_text("the first attempt fails on purpose")
                expect(page.locator(".traceback")).to_contain_text("Traceback")
                expect(page.locator("main[data-live=off]")).to_have_count(1)  # polling stops
                page.screenshot(path=str(shots / "2-failed.png"), full_page=True)

                # Then it is retried from the dashboard, after a confirmation.
                page.get_by_role("link", name="Retry…").click()
                expect(page.locator(".question")).to_contain_text(f"Retry job {job.id}")
                page.screenshot(path=str(shots / "3-confirm-retry.png"))
                page.locator("#confirm").click()
                expect(page.locator(".done")).to_contain_text("Retried")
                expect(state).to_have_attribute("data-state", "running")
                expect(page.locator("#progress-text")).to_have_text(f"1 / {apps.STEPS}")
                page.screenshot(path=str(shots / "4-retried-running.png"))
                row = web_app.store.job_get(job.id)
                assert row is not None and row.attempt == 2

                # And cancelled while it runs again: the worker stops it.
                page.get_by_role("link", name="Cancel…").click()
                page.locator("#confirm").click()
                expect(page.locator(".done")).to_contain_text("Cancel requested")
                expect(state).to_have_attribute("data-state", "cancelled")
                page.screenshot(path=str(shots / "5-cancelled.png"), full_page=True)
                expect(page.locator("#history")).to_contain_text("cancel_requested")

                # The other pages, as an operator sees them now.
                page.goto(f"{server.base}/")
                expect(page.locator("#per-minute rect.bar.cancelled")).to_have_count(1)
                page.screenshot(path=str(shots / "6-overview.png"), full_page=True)
                page.goto(f"{server.base}/jobs?state=cancelled")
                expect(page.locator(f'tr[data-job="{job.id}"]')).to_have_count(1)
                page.screenshot(path=str(shots / "7-jobs.png"), full_page=True)
                page.goto(f"{server.base}/processes")
                expect(page.locator('tr[data-kind="supervisor"]')).to_have_count(1)
                expect(page.locator('tr[data-kind="child"]')).to_have_count(1)
                page.screenshot(path=str(shots / "8-processes.png"), full_page=True)
            finally:
                browser.close()
    finally:
        worker.signal(15)
        worker.wait(30)
    assert job.refresh().state is JobState.CANCELLED
    assert problems == []  # no script error, no Content-Security-Policy violation
    saved = sorted(p.name for p in shots.iterdir())
    assert len(saved) == 11 and all((shots / name).stat().st_size > 0 for name in saved)


def test_the_schedules_and_services_pages_update_themselves(live: Live, store_url: str) -> None:
    """The schedules page shows fires as they happen and links the last one's job; the
    services page shows the requests an instance serves and a service that is down;
    both without a reload, and without a console error."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    shots = artifacts(("sqlite" if store_url.startswith("sqlite") else "postgres") + "-pages")
    print(f"\nschedules and services screenshots: {shots}")
    base = live.server.base
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 700})
            page.set_default_timeout(WAIT_MS)
            _watch_problems(page, problems)

            # The schedule fires every second: its last fire moves on by itself.
            page.goto(f"{base}/schedules")
            every = page.locator('tr[data-schedule="web-every-second"]')
            last_job = every.locator("td.id a")
            expect(last_job).to_have_count(1)
            first = last_job.inner_text()
            expect(last_job).not_to_have_text(first)
            expect(page.locator('tr[data-schedule="web-weekly"] td.last-fire')).to_have_text(
                "never"
            )
            page.screenshot(path=str(shots / "1-schedules.png"), full_page=True)
            job_id = last_job.inner_text()
            last_job.click()
            expect(page.locator("h1")).to_contain_text(job_id)
            expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
            page.screenshot(path=str(shots / "2-fire-job.png"))

            # The services page: web-echo running, web-idle down; calls show up live.
            page.get_by_role("link", name="Services").click()
            echo = page.locator('tr[data-service="web-echo"][data-status="running"]')
            expect(echo).to_have_count(1)
            expect(page.locator('tr[data-service="web-idle"] .status.down')).to_have_count(1)
            served = echo.locator("td[data-served]")
            before = int(served.get_attribute("data-served") or "0")
            for n in range(5):
                live.app.services["web-echo"].call({"n": n}, timeout=30)
            expect(served).to_have_attribute("data-served", str(before + 5))
            page.screenshot(path=str(shots / "3-services.png"), full_page=True)

            # The worker stops: the instance is stopped, and the service down.
            live.stop_worker()
            expect(page.locator('tr[data-service="web-echo"] .status.down')).to_have_count(1)
            expect(page.locator('tr[data-service="web-echo"] .status.stopped')).to_have_count(1)
            page.screenshot(path=str(shots / "4-services-down.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []  # no script error, no Content-Security-Policy violation
    saved = sorted(p.name for p in shots.iterdir())
    assert len(saved) == 4 and all((shots / name).stat().st_size > 0 for name in saved)
