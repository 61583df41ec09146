"""Stopping a worker: SIGTERM lets running jobs finish, a second signal or the end of the
grace period requeues them without using up an attempt."""

from __future__ import annotations

import signal

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_sigterm_lets_running_jobs_finish_and_leaves_queued_ones_untouched(
    harness: Harness,
) -> None:
    # Given two running jobs and three queued behind them
    gate = harness.gate()
    running = [harness.task("gated").enqueue(str(gate)) for _ in range(2)]
    worker = harness.start("worker", "--concurrency", "2")
    for job in running:
        wait_for(lambda j=job: harness.child_running(j.id), timeout=10, what="job running")
    queued = [harness.task("record").enqueue(i) for i in range(3)]

    # When the worker gets SIGTERM and the running jobs then finish
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "event=worker.stopping" in worker.log(), timeout=5)
    gate.touch()

    # Then it exits 0 after recording them; the queued jobs were never touched
    assert worker.wait(timeout=15) == 0
    for job in running:
        assert job.refresh().state is JobState.SUCCEEDED
        assert harness.runs_of(job.id) == 1
    for job in queued:
        record = job.refresh().record
        assert record.state is JobState.QUEUED
        assert (record.attempt, record.errors) == (0, 0)
    assert all(p.status == "stopped" for p in harness.app.store.process_list(gone_after=3))


def test_second_sigterm_requeues_running_jobs_without_using_an_attempt(
    harness: Harness,
) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    worker = harness.start("worker", "--concurrency", "1")
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="job running")

    worker.signal(signal.SIGTERM)
    wait_for(lambda: "event=worker.stopping" in worker.log(), timeout=5)
    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0
    record = job.refresh().record
    assert record.state is JobState.QUEUED
    assert (record.attempt, record.errors, record.crashes) == (1, 0, 0)
    assert "event=job.requeued" in worker.log()


def test_grace_period_over_requeues_running_jobs(harness: Harness) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    worker = harness.start("worker", "--concurrency", "1", shutdown_grace=0.5)
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="job running")

    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout=15) == 0
    assert job.refresh().state is JobState.QUEUED
    assert job.record.errors == 0
    # A new worker runs it to the end.
    gate.touch()
    harness.start("worker", "--concurrency", "1")
    assert job.wait(timeout=10).state is JobState.SUCCEEDED


def test_sigint_stops_at_once(harness: Harness) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    worker = harness.start("worker", "--concurrency", "1")
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="job running")

    worker.signal(signal.SIGINT)

    assert worker.wait(timeout=10) == 0
    assert job.refresh().state is JobState.QUEUED
    assert job.record.errors == 0
