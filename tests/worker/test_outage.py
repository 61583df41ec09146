"""A store outage: the supervisor keeps its jobs, retries its writes and loses nothing."""

from __future__ import annotations

import sqlite3

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_outcome_written_during_an_outage_is_kept_and_written_later(harness: Harness) -> None:
    # Given a running job
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    worker = harness.start("worker", "--concurrency", "1", busy_timeout=0.2)
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="job running")

    # When the store refuses every write (another process holds the write lock) while
    # the job finishes
    blocker = sqlite3.connect(harness.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        gate.touch()
        wait_for(lambda: harness.runs_of(job.id) == 1, timeout=10, what="job finished")
        wait_for(lambda: "op=record" in worker.log(), timeout=10, what="a failed write")
        assert job.refresh().state is JobState.RUNNING
    finally:
        blocker.execute("COMMIT")
        blocker.close()

    # Then the worker is still alive, and the outcome lands once the store is back
    assert job.wait(timeout=15).state is JobState.SUCCEEDED
    assert worker.popen.poll() is None
    after = harness.task("record").enqueue(1)
    assert after.wait(timeout=10).state is JobState.SUCCEEDED
    assert harness.runs_of(job.id) == 1
