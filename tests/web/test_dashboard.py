"""The dashboard over real HTTP from a real ``offload web`` server, on SQLite and on
PostgreSQL: what each page shows of a store whose jobs are known, and the actions."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from offload import Offload
from offload.ids import uuid7
from offload.testing import run_pending
from offload.types import JobFilter, JobState
from offload.web.dashboard.jobs import PAGE
from tests.web import apps
from tests.web.servers import WebServer

_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def page(server: WebServer, path: str, status: int = 200) -> str:
    response = server.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[-600:])
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    return response.text


def token_from(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, html[-800:]
    return found.group(1)


def act(server: WebServer, path: str, **fields: str) -> httpx.Response:
    """Open the confirmation page of ``path`` and submit it, as a browser does."""
    confirm = page(server, path + ("?" + "&".join(f"{k}={v}" for k, v in fields.items())))
    return server.client.post(
        path, data={"csrf_token": token_from(confirm), **fields}, follow_redirects=False
    )


def job_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', html)


def total(html: str, state: str) -> int:
    found = re.search(rf'data-state="{state}">.*?<strong>(\d+)</strong>', html, re.S)
    assert found, state
    return int(found.group(1))


def test_the_overview_counts_jobs_by_state_and_queue_and_charts_them(
    web_app: Offload, server: WebServer
) -> None:
    apps.shared.enqueue_many([(n,) for n in range(3)])
    apps.fails.enqueue_many([("a",), ("b",)])
    run_pending(web_app, ["metrics"])
    apps.later.enqueue()
    html = page(server, "/")
    assert total(html, "succeeded") == 3
    assert total(html, "failed") == 2
    assert total(html, "queued") == 1
    row = re.search(r'<tr data-queue="metrics">(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.search(r'data-state="succeeded">3<', row.group(1))
    assert re.search(r'data-state="failed">2<', row.group(1))
    # Jobs per minute: one bar per outcome in this minute (or two minutes if it turned).
    bars = re.findall(r'<rect class="bar (\w+)"[^>]*><title>[^<]*: (\d+) \w+</title>', html)
    by_kind: dict[str, int] = {}
    for kind, n in bars:
        by_kind[kind] = by_kind.get(kind, 0) + int(n)
    assert by_kind == {"succeeded": 3, "failed": 2}
    assert 'id="queue-depth"' in html
    assert "<script>" not in html and " style=" not in html  # nothing the CSP blocks


def test_the_jobs_list_pages_newest_first_without_offsets(
    web_app: Offload, server: WebServer
) -> None:
    made = [j.id for j in apps.later.enqueue_many([()] * (2 * PAGE + 7))]
    newest_first = sorted(made, reverse=True)
    seen: list[str] = []
    path = "/jobs"
    while True:
        html = page(server, path)
        ids = job_ids(html)
        assert len(ids) <= PAGE
        seen += ids
        older = re.search(r'href="(/jobs\?[^"]*before=[^"]+)" rel="next"', html)
        if older is None:
            break
        path = older.group(1).replace("&amp;", "&")
    assert seen == newest_first


def test_the_jobs_list_filters_by_state_queue_and_task_and_finds_an_id(
    web_app: Offload, server: WebServer
) -> None:
    ok = apps.shared.enqueue(1)
    bad = apps.fails.enqueue("x")
    waiting = apps.later.enqueue()
    run_pending(web_app, ["metrics"])
    assert job_ids(page(server, "/jobs?state=failed")) == [bad.id]
    assert job_ids(page(server, "/jobs?queue=late")) == [waiting.id]
    assert job_ids(page(server, "/jobs?task=web.shared")) == [ok.id]
    assert job_ids(page(server, "/jobs?state=succeeded&queue=late")) == []
    found = server.get(f"/jobs?id={bad.id}", follow_redirects=False)
    assert (found.status_code, found.headers["location"]) == (303, f"/jobs/{bad.id}")
    assert "No job with id" in page(server, f"/jobs?id={uuid7()}", 404)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("state=bogus", "state: expected one of scheduled, queued"),
        ("queue=" + "q" * 300, "queue: expected a name of at most 200"),
        ("before=not%20an%20id", "no job with id"),
    ],
)
def test_a_bad_filter_gets_a_clear_error(server: WebServer, query: str, says: str) -> None:
    response = server.get(f"/jobs?{query}")
    assert response.status_code in (400, 404)
    assert says in response.text


def test_a_jobs_page_shows_history_progress_messages_error_and_saved_data(
    web_app: Offload, server: WebServer
) -> None:
    failed = apps.fails.enqueue("note-7")
    shared = apps.shared.enqueue(4)
    run_pending(web_app, ["metrics"])
    html = page(server, f"/jobs/{failed.id}")
    assert 'data-state="failed"' in html
    assert "about to fail" in html  # its message
    assert "ValueError" in html and "failure detail note-7" in html
    assert "Traceback (most recent call last)" in html
    assert re.findall(r'<td class="event">(\w+)</td>', html) == ["started", "failed"]
    assert "&#34;note-7&#34;" in html  # the arguments, escaped
    html = page(server, f"/jobs/{shared.id}")
    assert "&#34;public:count&#34;: 4" in html and "kept inside" in html  # saved data
    assert "&#34;n&#34;: 4" in html  # the result
    assert "no job with id" in page(server, f"/jobs/{uuid7()}", 404)


def test_values_from_the_store_are_escaped(web_app: Offload, server: WebServer) -> None:
    job = apps.fails.enqueue("<script>alert(1)</script>")
    run_pending(web_app, ["metrics"])
    html = page(server, f"/jobs/{job.id}")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_retry_cancel_and_delete_from_the_dashboard(web_app: Offload, server: WebServer) -> None:
    failed = apps.fails.enqueue("r")
    run_pending(web_app, ["metrics"])
    done = act(server, f"/jobs/{failed.id}/retry")
    assert (done.status_code, done.headers["location"]) == (
        303,
        f"/jobs/{failed.id}?done=retried",
    )
    assert failed.refresh().state is JobState.QUEUED
    assert "Retried: the job is queued" in page(server, done.headers["location"])

    waiting = apps.later.enqueue()
    assert act(server, f"/jobs/{waiting.id}/cancel").status_code == 303
    assert waiting.refresh().state is JobState.CANCELLED

    gone = act(server, f"/jobs/{waiting.id}/delete")
    assert gone.headers["location"] == "/jobs?done=deleted"
    assert web_app.store.job_get(waiting.id) is None
    assert "Deleted the job" in page(server, gone.headers["location"])


def test_retry_every_failed_job_of_a_filter(web_app: Offload, server: WebServer) -> None:
    apps.fails.enqueue_many([(str(n),) for n in range(7)])
    other = apps.fails.using(queue="other").enqueue("o")
    run_pending(web_app, ["metrics", "other"])
    assert other.refresh().state is JobState.FAILED
    done = act(server, "/jobs/retry-failed", queue="metrics", task="web.fails")
    assert done.status_code == 303
    assert "done=bulk" in done.headers["location"] and "n=7" in done.headers["location"]
    queued = web_app.store.job_list(JobFilter(state=JobState.QUEUED, queue="metrics"))
    assert len(queued) == 7
    assert other.refresh().state is JobState.FAILED  # another queue: left alone


def test_the_processes_page_lists_a_running_worker(
    web_app: Offload, server: WebServer, tmp_path: Path
) -> None:
    from offload.testing import wait_for
    from tests.fixtures import processes

    worker = processes.start(
        "worker", web_app.settings.url, tmp_path / "ledger.db", tmp_path / "worker.log",
        app="tests.web.apps:app", args=["--queues", "metrics", "--concurrency", "2"],
    )  # fmt: skip
    try:

        def listed() -> str | None:
            html = page(server, "/processes")
            kinds = re.findall(r'data-kind="(\w+)"', html)
            return html if sorted(kinds) == ["child", "child", "supervisor"] else None

        html = wait_for(listed, timeout=60, what="the worker and its children on the page")
    finally:
        worker.signal(15)
        worker.wait(30)
    assert html.count('class="status running"') == 3
    assert f'<td class="num">{worker.pid}</td>' in html
