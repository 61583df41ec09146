"""The groups pages over real HTTP from a real ``offload web`` server, on SQLite and on
PostgreSQL: a real worker runs a group (one member held until the test releases it, one
that fails) and a stage after it; the pages follow them to completion, link members,
stages and the callback, and page through groups by id. And the same in a real browser
(Debian's chromium driven by Playwright), with no console error."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offload import Offload
from offload.groups import Group
from offload.jobs import Job
from offload.testing import wait_for
from offload.types import GroupState, JobState
from offload.web.dashboard.core import format_time
from offload.web.dashboard.groups import PAGE
from tests.fixtures import processes
from tests.fixtures.postgres import store_settings
from tests.web import groups_app
from tests.web.conftest import stop
from tests.web.servers import SECRET, WebServer
from tests.web.test_browser import CHROMIUM
from tests.web.test_dashboard import page
from tests.web.test_dashboard_browser import _watch_problems, artifacts
from tests.web.test_dashboard_pages import cells, row_of

#: Generous: the machine may be loaded.
WAIT = 90.0
#: A group name with markup: shown as text, never as HTML.
NAME = '<img src=x onerror=alert(1)> & "import"'
APP = "tests.web.groups_app:app"


@dataclass
class Running:
    """``tests.web.groups_app:app`` on a fresh store, a worker on its queue and an
    ``offload web`` server on the same store; ``gate`` releases the held member."""

    app: Offload
    worker: processes.WorkerProcess
    server: WebServer
    gate: Path


@pytest.fixture
def running(store_url: str, tmp_path: Path) -> Iterator[Running]:
    app = groups_app.app
    app.close()
    app.settings = store_settings(store_url, secret=SECRET)
    app.migrate()
    worker = processes.start(
        "worker", store_url, tmp_path / "ledger.db", tmp_path / "worker.log", app=APP,
        args=["--queues", groups_app.QUEUE, "--concurrency", "2"],
    )  # fmt: skip
    server = None
    try:
        server = WebServer(store_url, tmp_path, app=APP)
        yield Running(app, worker, server, tmp_path / "gate")
    finally:
        if server is not None:
            server.stop()
        stop(worker)
        app.close()


@dataclass
class Built:
    first: Group
    second: Group
    members: list[Job[Any]]
    staged: Job[Any]


def build(r: Running) -> Built:
    """A group of four (one fails, one is held by the gate) with a callback, and a stage
    of one after it; returned once the three members not held are final."""
    with r.app.group(name=NAME, then=groups_app.report) as first:
        members = [first.add(groups_app.square, 3), first.add(groups_app.square, -1)]
        members.append(first.add(groups_app.hold, str(r.gate)))
        members += first.add_many(groups_app.square, [(4,)])
    with r.app.group(name="post-process", after=first) as second:
        staged = second.add(groups_app.square, 5)
    wait_for(
        lambda: first.refresh().progress == (3, 4), timeout=WAIT, interval=0.1,
        what="three members of the group to finish",
    )  # fmt: skip
    return Built(first, second, members, staged)


def group_row(html: str, group: Group) -> list[str]:
    row = row_of(html, "data-group", group.id)
    assert row is not None, html[-2000:]
    return cells(row)


def test_the_groups_pages_follow_a_real_group_to_completion(running: Running) -> None:
    server, store = running.server, running.app.store
    b = build(running)
    first, second = b.first, b.second

    # While the held member runs: the list is live, newest first, names escaped.
    html = page(server, "/groups")
    assert 'aria-current="page">Groups<' in html
    assert 'hx-trigger="every 2s"' in html and 'data-live="on"' in html
    assert "<img" not in html and "<script>" not in html and " style=" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;import&#34;" in html
    ids = re.findall(r'<tr data-group="([^"]+)"', html)
    assert ids == [g.id for g in store.group_list()] == [second.id, first.id]
    created = format_time(first.record.created_at)
    assert group_row(html, first) == [
        first.id, NAME, "sealed", "3/4", "2", "1", created, "-", "", "web.groups.report",
    ]  # fmt: skip
    assert '<progress max="4" value="3" aria-label="3 of 4 done">' in html
    assert group_row(html, second) == [
        second.id, "post-process", "waiting", "0/1", "0", "0",
        format_time(second.record.created_at), "-", first.id, "",
    ]  # fmt: skip
    stage_row = row_of(html, "data-group", second.id) or ""
    assert f'<a href="/groups/{first.id}">{first.id}</a>' in stage_row
    assert f'<a href="/groups/{second.id}">{second.id}</a>' in stage_row

    # A group's page: its fields, its previous stage, the callback not stored yet.
    detail = page(server, f"/groups/{first.id}")
    assert 'data-live="on"' in detail and 'data-state="sealed"' in detail
    assert "<img" not in detail and "&lt;img src=x" in detail
    assert re.search(r'id="progress"><progress max="4" value="3"', detail)
    assert "none: this group is not a stage of another" in detail
    assert f"{first.callback_id}</span> <small>(stored when the group completes)" in detail
    assert f'href="/jobs/{first.callback_id}"' not in detail
    staged_page = page(server, f"/groups/{second.id}")
    assert 'data-state="waiting"' in staged_page
    assert f'<a class="id" href="/groups/{first.id}">{first.id}</a> (&lt;img' in staged_page

    # Each member's page links back to its group; a job of no group has no such link.
    for job in b.members:
        assert f'id="group"><a class="id" href="/groups/{first.id}">' in page(
            server, f"/jobs/{job.id}"
        )
    assert f'href="/groups/{second.id}"' in page(server, f"/jobs/{b.staged.id}")
    alone = groups_app.square.enqueue(6)
    assert 'id="group"' not in page(server, f"/jobs/{alone.id}")

    # Released: both complete; the pages stop polling and link the callback job.
    running.gate.touch()
    second.wait(timeout=WAIT)
    first.refresh()
    assert first.state is GroupState.COMPLETE and first.callback_id is not None
    html = page(server, "/groups")
    assert 'data-live="off"' in html and "hx-trigger" not in html
    assert group_row(html, first) == [
        first.id, NAME, "complete", "4/4", "3", "1", created,
        format_time(first.record.completed_at), "", f"web.groups.report {first.callback_id}",
    ]  # fmt: skip
    assert f'<a class="id" href="/jobs/{first.callback_id}">' in html
    assert group_row(html, second)[2:6] == ["complete", "1/1", "1", "0"]
    detail = page(server, f"/groups/{first.id}")
    assert 'data-live="off"' in detail and 'data-state="complete"' in detail
    assert f'<a class="id" href="/jobs/{first.callback_id}">{first.callback_id}</a>' in detail
    callback = page(server, f"/jobs/{first.callback_id}")
    assert "web.groups.report" in callback
    row = store.job_get(first.callback_id)
    assert row is not None and row.state in (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED)

    # Unknown or malformed ids are a 404 page; nothing here accepts a POST.
    assert "no group with id nope" in page(server, "/groups/nope", 404)
    missing = page(server, "/groups/%3Cb%3Ex", 404)
    assert "<b>x" not in missing and "&lt;b&gt;x" in missing
    assert "no group with id" in page(server, "/groups?before=%3Cb%3E", 404)
    assert server.client.post("/groups").status_code == 405
    assert server.client.post(f"/groups/{first.id}").status_code == 405


def test_the_groups_list_pages_by_id_newest_first(web_app: Offload, server: WebServer) -> None:
    for n in range(PAGE + 2):
        with web_app.group(name=f"batch {n}"):
            pass  # sealed with no members: complete at once
    everything = [g.id for g in web_app.store.group_list(limit=PAGE + 10)]
    assert len(everything) == PAGE + 2

    html = page(server, "/groups")
    assert re.findall(r'<tr data-group="([^"]+)"', html) == everything[:PAGE]
    assert 'data-live="off"' in html  # every group shown is complete
    assert 'rel="first"' not in html
    older = re.search(r'<a href="/groups\?before=([^"]+)" rel="next">', html)
    assert older is not None and older.group(1) == everything[PAGE - 1]

    second = page(server, f"/groups?before={older.group(1)}")
    assert re.findall(r'<tr data-group="([^"]+)"', second) == everything[PAGE:]
    assert 'rel="next"' not in second and '<a href="/groups" rel="first">' in second
    assert group_row(second, web_app.get_group(everything[-1]))[1:4] == [
        "batch 0", "complete", "0/0",
    ]  # fmt: skip

    # A group not complete makes the page that shows it live, and only that one.
    web_app.group(name="still open")
    assert 'data-live="on"' in page(server, "/groups")
    assert 'data-live="off"' in page(server, f"/groups?before={older.group(1)}")
    assert "No groups older than this." in page(server, f"/groups?before={everything[-1]}")


def test_the_groups_pages_in_a_browser(running: Running, store_url: str) -> None:
    """A group followed live in a browser, from the list to its page, to a member and
    back, to completion; no console error, no script run from a stored name."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=int(WAIT * 1000))
    shots = artifacts(("sqlite" if store_url.startswith("sqlite") else "postgres") + "-groups")
    print(f"\ngroups screenshots: {shots}")
    base = running.server.base
    b = build(running)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 700})
            tab.set_default_timeout(WAIT * 1000)
            _watch_problems(tab, problems)
            tab.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

            # The list: the group held at 3/4, its stage waiting for it.
            tab.goto(f"{base}/groups")
            first = tab.locator(f'tr[data-group="{b.first.id}"]')
            expect(first).to_have_attribute("data-state", "sealed")
            expect(first.locator(".done-total")).to_have_text("3/4")
            expect(first.locator("td").nth(1)).to_have_text(NAME)
            expect(tab.locator(f'tr[data-group="{b.second.id}"]')).to_have_attribute(
                "data-state", "waiting"
            )
            expect(tab.locator("main[data-live=on]")).to_have_count(1)
            tab.screenshot(path=str(shots / "1-groups-running.png"), full_page=True)

            # Its page, then the held member's page and back by its group link.
            first.locator("td.id a").click()
            expect(tab.locator("#state")).to_have_attribute("data-state", "sealed")
            expect(tab.locator("#name")).to_have_text(NAME)
            tab.screenshot(path=str(shots / "2-group-running.png"), full_page=True)
            tab.goto(f"{base}/jobs/{b.members[2].id}")
            expect(tab.locator("#state")).to_have_attribute("data-state", "running")
            tab.screenshot(path=str(shots / "3-member.png"))
            tab.locator("#group a").click()
            expect(tab.locator("h1")).to_contain_text(b.first.id)

            # Released: the page completes by itself and stops polling.
            running.gate.touch()
            expect(tab.locator("#state")).to_have_attribute("data-state", "complete")
            expect(tab.locator("#progress .done-total")).to_have_text("4/4")
            expect(tab.locator("main[data-live=off]")).to_have_count(1)
            expect(tab.locator("#callback a")).to_have_text(b.first.refresh().callback_id or "")
            tab.screenshot(path=str(shots / "4-group-complete.png"), full_page=True)

            # The stage after it: its previous stage linked, and it completes too.
            tab.goto(f"{base}/groups/{b.second.id}")
            expect(tab.locator("#previous a")).to_have_text(b.first.id)
            expect(tab.locator("#state")).to_have_attribute("data-state", "complete")
            tab.screenshot(path=str(shots / "5-stage-complete.png"), full_page=True)
            tab.get_by_role("link", name="Groups").click()
            expect(tab.locator("tr[data-state=complete]")).to_have_count(2)
            expect(tab.locator("main[data-live=off]")).to_have_count(1)
            tab.screenshot(path=str(shots / "6-groups-complete.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []  # no script error, no CSP violation, no alert from a name
    saved = sorted(p.name for p in shots.iterdir())
    assert len(saved) == 6 and all((shots / name).stat().st_size > 0 for name in saved)
