"""The web process ending while its after-response jobs run: killed, the lease brings the
job to a worker; stopped gracefully, running jobs finish within a short bound or are
requeued, and jobs not started yet stay queued. Nothing is lost or run twice."""

from __future__ import annotations

import signal
import time

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.after_response.conftest import Web

#: Exit codes of a graceful stop: uvicorn re-raises SIGTERM once it has shut down.
GRACEFUL = (0, -signal.SIGTERM)


def test_job_of_a_sigkilled_web_process_completes_on_a_worker_through_its_lease(
    web: Web,
) -> None:
    # Given a job running in the web process after its response
    server = web.serve("starlette-uvicorn", lease=3, heartbeat=1)
    gate = web.gate()
    reply = server.after("gated", str(gate))
    (job_id,) = reply["ids"]
    wait_for(lambda: web.runs(job_id, "start"), timeout=10, what="the job to start")

    # When the web process is killed mid-run
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(10)
    gate.touch()
    assert web.job(job_id).state is JobState.RUNNING  # until its lease runs out

    # Then a worker rescues it once the lease expires, and runs it to completion
    worker = web.start("worker", "--concurrency", "1", lease=3, heartbeat=1)
    job = web.job(job_id).wait(timeout=20)
    assert job.state is JobState.SUCCEEDED, job.events()
    assert job.record.crashes == 1 and job.record.errors == 0 and job.attempts == 2
    starts, done = web.runs(job_id, "start"), web.runs(job_id, "done")
    assert [row[2] == reply["pid"] for row in starts] == [True, False]
    assert len(done) == 1 and done[0][2] != reply["pid"]
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


@pytest.mark.parametrize("stack", ["starlette-uvicorn", "flask-gunicorn", "django-uvicorn-wrapped"])
def test_sigterm_lets_a_running_job_finish_within_the_grace(web: Web, stack: str) -> None:
    server = web.serve(stack, after_response_grace=20)
    reply = server.after("pause", 2.0)
    (job_id,) = reply["ids"]
    wait_for(lambda: web.runs(job_id, "start"), timeout=10, what="the job to start")

    began = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=30) in GRACEFUL
    # The process waited for the job (no worker runs here): it finished in the web process.
    job = web.job(job_id)
    assert job.state is JobState.SUCCEEDED and job.attempts == 1
    assert [row[2] for row in web.runs(job_id)] == [reply["pid"]]
    assert time.monotonic() - began < 15


@pytest.mark.parametrize("stack", ["starlette-uvicorn", "flask-gunicorn"])
def test_sigterm_requeues_a_job_past_the_grace_and_leaves_waiting_ones_queued(
    web: Web, stack: str
) -> None:
    # Given one job running in the web process and one waiting for its only thread
    server = web.serve(stack, after_response_threads=1, after_response_grace=0.5)
    gate = web.gate()
    running, waiting = server.after("gated", str(gate), count=2)["ids"]
    wait_for(lambda: web.runs(running, "start"), timeout=10, what="the first job to start")

    # When the server is stopped, the job still running after the grace is requeued
    began = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=30) in GRACEFUL
    assert time.monotonic() - began < 15
    first, second = web.job(running), web.job(waiting)
    assert first.state is JobState.QUEUED and first.events()[-1].kind == "requeued"
    assert first.record.errors == first.record.crashes == 0
    assert second.state is JobState.QUEUED and second.attempts == 0
    assert "event=after_response.stopped" in server.log()

    # Then a drain runs both, once each
    gate.touch()
    drain = web.start("drain", "--concurrency", "2")
    assert drain.wait(timeout=30) == 0, drain.log()
    for job in (first, second):
        assert job.refresh().state is JobState.SUCCEEDED
        assert len(web.runs(job.id)) == 1
    assert len(web.runs(running, "start")) == 2
