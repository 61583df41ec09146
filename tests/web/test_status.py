"""``GET /status/{token}`` over real HTTP from a real ``offload web`` server: what a user's
page sees of a job, and nothing more."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from offload import Offload
from offload.ids import uuid7
from offload.testing import run_pending, wait_for
from offload.types import JobFilter
from offload.web import tokens
from tests.fixtures import processes
from tests.web import apps
from tests.web.servers import SECRET, WebServer


def _status(server: WebServer, token: str) -> dict[str, object]:
    response = server.get(f"/status/{token}")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, object] = response.json()
    return body


def test_status_follows_a_job_run_by_a_worker(
    web_app: Offload, server: WebServer, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    job = apps.stepped.enqueue(str(gates), "note-from-the-arguments")
    token = job.status_token()
    first = _status(server, token)
    assert first["state"] == "queued" and first["finished"] is False
    worker = processes.start(
        "worker", web_app.settings.url, tmp_path / "ledger.db", tmp_path / "worker.log",
        app="tests.web.apps:app", args=["--queues", "steps", "--concurrency", "1"],
    )  # fmt: skip
    try:
        for step in range(1, apps.STEPS + 1):

            def at_step(step: int = step) -> dict[str, object] | None:
                body = _status(server, token)
                return body if body["progress"]["current"] == step else None  # type: ignore[index]

            seen = wait_for(at_step, timeout=30, what=f"step {step} in the status")
            assert seen["state"] == "running"
            assert seen["progress"] == {
                "current": step, "total": apps.STEPS,
                "percent": 100.0 * step / apps.STEPS, "message": f"step {step}",
            }  # fmt: skip
            (gates / f"step-{step}").touch()
        done = wait_for(
            lambda: (body := _status(server, token))["finished"] and body,
            timeout=30,
            what="the end",
        )
    finally:
        worker.signal(15)
        worker.wait(30)
    assert done["state"] == "succeeded"
    assert [m["text"] for m in done["messages"]] == ["started"]  # type: ignore[attr-defined, index]
    assert done["data"] == {"report": "report.csv"}  # public values only
    assert "result" not in done  # the task did not make its result public
    assert "note-from-the-arguments" not in server.get(f"/status/{token}").text


def test_unknown_forged_and_expired_tokens_all_get_the_same_404(
    web_app: Offload, server: WebServer
) -> None:
    (job,) = apps.private.enqueue_many([(1,)])
    good = job.status_token()
    assert server.get(f"/status/{good}").status_code == 200
    _payload, mac = good.split(".")
    other = web_app.get_job(apps.private.enqueue(2).id)
    other_payload = other.status_token().split(".")[0]
    deleted = apps.private.enqueue(3)
    deleted_token = deleted.status_token()
    assert web_app.store.job_delete([deleted.id]) == [deleted.id]
    bad = {
        "forged with another secret": tokens.sign(job.id, "another-secret-0123456789"),
        "another job's payload with this mac": f"{other_payload}.{mac}",
        "expired": tokens.sign(job.id, SECRET, 1, now=time.time() - 60),
        "never enqueued": tokens.sign(uuid7(), SECRET),
        "deleted job": deleted_token,
        "mac cut short": good[:-2],
        "garbage": "not-a-token",
        "too long": "A" * 2000 + "." + mac,
        "bad base64": "!!!!." + mac,
    }
    answers = {name: server.get(f"/status/{token}") for name, token in bad.items()}
    bodies = {
        name: (r.status_code, r.content, r.headers["content-type"]) for name, r in answers.items()
    }
    assert set(bodies.values()) == {(404, b'{"error":"not found"}', "application/json")}, bodies
    # An unknown path answers the same.
    nowhere = server.get("/nowhere")
    assert (nowhere.status_code, nowhere.content) == (404, b'{"error":"not found"}')


def test_a_failed_job_shows_neither_its_arguments_nor_its_error(
    web_app: Offload, server: WebServer
) -> None:
    job = apps.fails.enqueue("argument-secret-7731")
    run_pending(web_app, ["metrics"])
    assert job.refresh().state.value == "failed"
    response = server.get(f"/status/{job.status_token()}")
    body = response.json()
    assert body["state"] == "failed" and body["finished"] is True
    assert [m["text"] for m in body["messages"]] == ["about to fail"]
    assert set(body) == {"state", "finished", "progress", "messages", "data"}
    for leak in ("argument-secret-7731", "failure detail", "Traceback", "ValueError", "web.fails"):
        assert leak not in response.text


def test_the_result_is_shown_only_for_a_task_that_makes_it_public(
    web_app: Offload, server: WebServer
) -> None:
    shown = apps.shared.enqueue(7)
    hidden = apps.private.enqueue(8)
    run_pending(web_app, ["metrics"])
    body = _status(server, shown.status_token())
    assert body["state"] == "succeeded"
    assert body["result"] == {"n": 7}
    assert body["data"] == {"count": 7}  # not "hidden"
    assert "result" not in _status(server, hidden.status_token())
    # Not before it succeeded either.
    waiting = apps.shared.enqueue(9)
    assert "result" not in _status(server, waiting.status_token())
    assert len(web_app.store.job_list(JobFilter(limit=10))) == 3


def test_a_retried_job_shows_the_new_attempts_progress(
    sqlite_web_app: Offload, sqlite_server: WebServer
) -> None:
    job = apps.shared.enqueue(1)
    run_pending(sqlite_web_app, ["metrics"])
    token = job.status_token()
    assert _status(sqlite_server, token)["state"] == "succeeded"
    assert sqlite_web_app.store.job_retry([job.id]) == [job.id]
    again = _status(sqlite_server, token)
    assert again["state"] == "queued"
    assert again["progress"] == {"current": 0.0, "total": None, "percent": None, "message": None}
    assert "result" not in again


def test_the_host_allowlist_and_security_headers(server: WebServer) -> None:
    for host in ("evil.example", "127.0.0.1.evil.example", "localhost.", "", "[::2]"):
        response = server.get("/static/offload-status.js", headers={"host": host})
        assert response.status_code == 400, host
        assert response.json() == {"error": "bad host"}
        _assert_security_headers(response)
    for host in ("localhost", f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        assert server.get("/static/offload-status.js", headers={"host": host}).status_code == 200
    for path in ("/static/offload-status.js", "/metrics", "/status/nothing", "/nowhere"):
        _assert_security_headers(server.get(path))


def _assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
