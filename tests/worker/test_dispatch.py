"""Rows a worker cannot run as they are (written into the database by hand: bytes where
text belongs, text where a number belongs): they fail at once, naming the column, and the
pool goes on serving the other jobs."""

from __future__ import annotations

import sqlite3
import time

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_rows_that_cannot_be_dispatched_fail_and_the_other_jobs_run_promptly(
    harness: Harness,
) -> None:
    worker = harness.start("worker", "--concurrency", "2")
    wait_for(lambda: len(harness.processes()) == 3, timeout=10, what="worker up")

    # One transaction: the worker's next claim sees the hostile rows with the good ones.
    conn = sqlite3.connect(harness.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        record = harness.task("record").using(connection=conn)
        bad_args = [record.enqueue(i) for i in range(2)]
        bad_timeout = [record.enqueue(i) for i in range(2)]
        good = [record.enqueue(i) for i in range(8)]
        marks = ",".join("?" * 2)
        ids = [j.id for j in bad_args]
        conn.execute(f"UPDATE offload_jobs SET args = X'00ff' WHERE id IN ({marks})", ids)
        ids = [j.id for j in bad_timeout]
        conn.execute(f"UPDATE offload_jobs SET timeout = 'soon' WHERE id IN ({marks})", ids)
        conn.execute("COMMIT")
    finally:
        conn.close()
    began = time.monotonic()

    # Promptly: well within a lease (5 s), which is how long a wedged slot's batch waits.
    for job in good:
        assert job.wait(timeout=10).state is JobState.SUCCEEDED
    assert time.monotonic() - began < 4.0
    for jobs, column in ((bad_args, "args"), (bad_timeout, "timeout")):
        for job in jobs:
            job.wait(timeout=5)
            assert job.refresh().state is JobState.FAILED
            error = job.error or {}
            assert error["type"] == "DispatchError", error
            assert f"{column} holds" in error["message"], error
            assert harness.runs_of(job.id, "done") == 0  # no child ever ran it
    assert [j.refresh().state for j in good] == [JobState.SUCCEEDED] * 8
    assert "event=worker.error" not in worker.log()
