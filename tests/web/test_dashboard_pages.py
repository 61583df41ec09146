"""The schedules and services pages over real HTTP from a real ``offload web`` server,
on SQLite and on PostgreSQL, against a store where a real worker fires a schedule and
hosts a service."""

from __future__ import annotations

import html as html_lib
import json
import re
import time
from typing import Any

import pytest

from offload.errors import ServiceFailed
from offload.store.rules import GONE_AFTER_BEATS
from offload.testing import wait_for
from offload.types import JobState, ProcessInfo, ScheduleFire
from offload.views import schedule_dict, service_of
from offload.web.dashboard.core import format_time
from tests.fixtures import processes
from tests.web.conftest import Live
from tests.web.servers import WebServer
from tests.web.test_dashboard import page

#: Generous: the machine may be loaded.
WAIT = 90.0


def row_of(html: str, attribute: str, value: str) -> str | None:
    """The inside of the first table row whose ``attribute`` is ``value``."""
    found = re.search(rf'<tr [^>]*\b{attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', html, re.S)
    return found.group(1) if found else None


def cells(row: str) -> list[str]:
    """The text of each cell of a row, tags removed, entities decoded."""
    return [
        html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def fired(live: Live, name: str) -> Any:
    """The latest fire of ``name`` once its job has succeeded."""

    def done() -> Any:
        last = live.app.store.schedule_last_fires().get(name)
        if last is None:
            return None
        job = live.app.store.job_get(last.job_id)
        return last if job is not None and job.state is JobState.SUCCEEDED else None

    return wait_for(done, timeout=WAIT, interval=0.1, what=f"a fire of {name} to run")


def test_the_schedules_page_lists_each_schedule_with_its_last_and_next_fire(
    live: Live,
) -> None:
    server = live.server
    fired(live, "web-every-second")
    # A schedule this app does not declare (renamed since), its name from the store.
    stale = "<b>old-report</b>"
    job = live.app.schedules["web-weekly"].new_job()
    live.app.store.schedule_fire([ScheduleFire(stale, 1_000_000_020, job)])

    html = page(server, "/schedules")
    assert 'aria-current="page">Schedules<' in html
    assert 'hx-trigger="every 2s"' in html  # live
    assert "<script>" not in html and " style=" not in html and "<b>" not in html

    row = row_of(html, "data-schedule", "web-every-second")
    assert row is not None, html[-2000:]
    name, task, expression, meaning, zone, catch_up, last, last_job, next_fire = cells(row)
    assert (name, task, expression, meaning, zone, catch_up) == (
        "web-every-second", "web.pages.tick", "every 1s", "every second", "-", "latest",
    )  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(.+ ago\)", last), last
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in .+\)", next_fire), next_fire
    # The last fire links to its job's page, and that job is one of this schedule.
    link = re.search(r'<a href="/jobs/([^"]+)">\1</a>', row)
    assert link is not None and link.group(1) == last_job, row
    detail = page(server, f"/jobs/{last_job}")
    assert "web.pages.tick" in detail and 'data-state="' in detail

    # Not due for days: never fired; its next fire is the one the schedule computes.
    weekly = row_of(html, "data-schedule", "web-weekly")
    assert weekly is not None
    expected = schedule_dict("web-weekly", live.app.schedules["web-weekly"], None, time.time())
    assert cells(weekly) == [
        "web-weekly", "web.pages.weekly", "0 3 * * 1", expected["description"],
        "Europe/Berlin", "none", "never", "", cells(weekly)[-1],
    ]  # fmt: skip
    assert cells(weekly)[-1].startswith(format_time(expected["next_fire_at"]) + " (in ")
    assert "(Europe/Berlin)" in expected["description"]

    # Known to the store only: its escaped name, its last fire, no next fire.
    assert row_of(html, "data-schedule", stale) is None  # the raw name is never there
    old = row_of(html, "data-schedule", html_lib.escape(stale, quote=True).replace("'", "&#39;"))
    assert old is not None, html
    assert "&lt;b&gt;old-report&lt;/b&gt;" in old and "not declared by this app" in old
    assert format_time(1_000_000_020) in old

    # The page lists what ``offload schedules`` lists.
    listed = processes.run(
        "schedules", live.app.settings.url, server.log_path.parent / "ledger.db",
        app="tests.web.pages_apps:app", args=["--json"], timeout=WAIT,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert names == sorted(["web-every-second", "web-weekly", stale])
    assert re.findall(r'<tr data-schedule="([^"]+)"', html) == [
        html_lib.escape(n, quote=True) for n in names
    ]
    # Read-only: there is nothing to post.
    assert server.client.post("/schedules").status_code == 405

    # A fire recorded a week ago or more, and none since: fires fell due unrecorded.
    spec = live.app.schedules["web-weekly"].spec
    now = int(live.app.store.now())
    (old_fire,) = spec.latest(now - 30 * 86400, now - 8 * 86400, 1)
    fresh = live.app.schedules["web-weekly"].new_job()
    live.app.store.schedule_fire([ScheduleFire("web-weekly", old_fire, fresh)])
    weekly = row_of(page(server, "/schedules"), "data-schedule", "web-weekly")
    assert weekly is not None
    assert cells(weekly)[6].startswith(format_time(old_fire) + " (")
    assert cells(weekly)[6].endswith(" ago) overdue") and 'class="status overdue"' in weekly


def service_row(live: Live, name: str) -> ProcessInfo | None:
    gone_after = GONE_AFTER_BEATS * live.app.settings.heartbeat
    for p in live.app.store.process_list(gone_after=gone_after):
        if p.status == "running" and (service_of(p) or ("",))[0] == name:
            return p
    return None


def test_the_services_page_lists_instances_their_counts_and_the_services_down(
    live: Live,
) -> None:
    server = live.server
    row = wait_for(
        lambda: service_row(live, "web-echo"), timeout=WAIT, interval=0.1,
        what="web-echo to register",
    )  # fmt: skip
    echo = live.app.services["web-echo"]
    for n in range(3):
        assert echo.call({"n": n}, timeout=30) == {"n": n}
    with pytest.raises(ServiceFailed):
        echo.call({"fail": "on purpose"}, timeout=30)
    # An instance row written by another version, with markup in its name and address.
    live.app.store.process_heartbeat([
        ProcessInfo(
            id="hand-made", kind="service", host="elsewhere", pid=4242,
            info=json.dumps({"service": "<img src=x>", "address": "<script>x</script>"}),
        )
    ])  # fmt: skip

    def counted() -> str | None:
        html = page(server, "/services")
        echo_row = row_of(html, "data-service", "web-echo")
        ok = echo_row is not None and 'data-served="4"' in echo_row
        return html if ok and 'data-failed="1"' in (echo_row or "") else None

    html = wait_for(counted, timeout=WAIT, interval=0.2, what="echo's counts on the page")
    assert 'aria-current="page">Services<' in html and 'hx-trigger="every 2s"' in html
    assert "<script>" not in html and "<img" not in html and " style=" not in html
    echo_row = row_of(html, "data-service", "web-echo")
    assert echo_row is not None
    name, address, host, pid, status, uptime, served, failed, rss, peak = cells(echo_row)
    registered = service_of(row)
    assert registered is not None
    assert (name, address, host, pid, status) == (
        "web-echo", registered[1], row.host, str(row.pid), "running",
    )  # fmt: skip
    assert address.startswith("unix:")
    assert (served, failed) == ("4", "1")
    assert uptime != "-" and rss.endswith("iB") and peak.endswith("iB")

    idle = row_of(html, "data-service", "web-idle")
    assert idle is not None and 'data-status="down"' in html
    assert cells(idle)[0] == "web-idle" and "down" in cells(idle)

    stranger = row_of(html, "data-process", "hand-made")
    assert stranger is not None
    assert "&lt;img src=x&gt;" in stranger and "&lt;script&gt;x&lt;/script&gt;" in stranger
    assert "not registered by this app" in stranger

    # When the worker stops, its instance is stopped and the service is down.
    live.stop_worker()

    def down() -> str | None:
        html = page(server, "/services")
        return html if re.search(r'<tr data-service="web-echo" data-status="down"', html) else None

    html = wait_for(down, timeout=WAIT, interval=0.2, what="web-echo shown down")
    stopped = row_of(html, "data-process", row.id)
    assert stopped is not None and 'class="status stopped"' in stopped
    assert server.client.post("/services").status_code == 405


def test_both_pages_say_when_there_is_nothing(sqlite_server: WebServer) -> None:
    assert "No schedules" in page(sqlite_server, "/schedules")
    assert "No services" in page(sqlite_server, "/services")
