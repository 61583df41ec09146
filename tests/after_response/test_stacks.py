"""Each web stack, served by a real server and called over real HTTP: a job added with
``after_response`` is stored before the response, and runs in the web process after it."""

from __future__ import annotations

import json

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.after_response.conftest import Web
from tests.after_response.servers import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_job_runs_in_the_web_process_after_the_response(web: Web, stack: str) -> None:
    server = web.serve(stack)
    gate = web.gate()

    # The response comes back while the job waits for a gate only the test can open: the
    # task did not delay it.
    reply = server.after("gated", str(gate))
    (job_id,) = reply["ids"]
    assert reply["stored"] == [True] and reply["in_request"] is True
    wait_for(lambda: web.runs(job_id, "start"), timeout=10, what="the job to start")

    job = web.job(job_id)
    assert job.state is JobState.RUNNING
    assert f":{reply['pid']}:web-" in (job.record.worker_id or "")
    gate.touch()
    assert job.wait(timeout=10).state is JobState.SUCCEEDED
    assert job.result() == "opened"
    # It ran once, in the process that served the request.
    assert [row[2] for row in web.rows()] == [reply["pid"], reply["pid"]]


@pytest.mark.parametrize("stack", ["starlette-uvicorn", "django-uvicorn"])
def test_async_view_uses_aafter_response(web: Web, stack: str) -> None:
    server = web.serve(stack)
    reply = server.after("record", "async", count=3, path="/after-async")
    assert reply["in_request"] is True and reply["stored"] == [True] * 3
    for job_id in reply["ids"]:
        job = web.job(job_id).wait(timeout=10)
        assert job.state is JobState.SUCCEEDED and job.result() == "async"
        assert [row[2] for row in web.runs(job_id)] == [reply["pid"]]


@pytest.mark.parametrize("stack", ["starlette-uvicorn", "flask-werkzeug", "flask-gunicorn"])
def test_job_added_while_a_streamed_body_is_produced_runs_after_it(web: Web, stack: str) -> None:
    server = web.serve(stack)
    response = server.get("/after-stream", task="record", args=json.dumps(["streamed"]))
    assert response.status_code == 200
    started, described = response.text.splitlines()
    reply = json.loads(described)
    assert started == "started" and reply["in_request"] is True
    job = web.job(reply["ids"][0]).wait(timeout=10)
    assert job.state is JobState.SUCCEEDED and job.result() == "streamed"
    assert [row[2] for row in web.runs(job.id)] == [reply["pid"]]
