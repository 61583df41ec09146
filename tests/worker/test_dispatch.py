"""Rows a worker cannot run as they are (written into the database by hand: bytes where
text belongs, text where a number belongs): they fail at once, naming the column, and the
pool goes on serving the other jobs."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from offload import JobState, Offload
from offload.testing import run_pending, wait_for
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


#: Stored options no release writes, each with the words its error must contain.
HOSTILE_OPTIONS = [
    ("not json", "options holds text that is not JSON"),
    ("[1, 2]", "options holds list"),
    ('{"memory_limit": "lots"}', "options.memory_limit holds str"),
    ('{"memory_limit": 1e400}', "options holds text that is not JSON"),
    ('{"memory_limit": 99999999999999999999999}', "options.memory_limit holds int"),
    ('{"backoff": -1}', "options.backoff holds int -1"),
    ('{"backoff": []}', "options.backoff holds list"),
]


def _write_hostile_rows(url: str, jobs: list[Any], big: Any) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for job, (options, _) in zip(jobs, HOSTILE_OPTIONS, strict=True):
            conn.execute("UPDATE offload_jobs SET options = ? WHERE id = ?", (options, job.id))
        # 1.4 MB of arguments, over the default 1 MB max_payload_bytes.
        conn.execute(
            """UPDATE offload_jobs SET args = '["' || hex(randomblob(700000)) || '"]'
            WHERE id = ?""",
            (big.id,),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _assert_refused(jobs: list[Any], big: Any) -> None:
    for job, (_, words) in zip(jobs, HOSTILE_OPTIONS, strict=True):
        job.wait(timeout=10)
        error = job.refresh().error or {}
        assert job.state is JobState.FAILED and job.attempts == 1, (job.state, error)
        assert error["type"] == "DispatchError" and words in error["message"], error
    big.wait(timeout=10)
    error = big.refresh().error or {}
    assert big.state is JobState.FAILED, (big.state, error)
    assert "over max_payload_bytes (1048576)" in error["message"], error


def test_garbage_options_and_oversized_rows_fail_on_the_first_run_naming_the_problem(
    harness: Harness,
) -> None:
    record = harness.task("record")
    jobs = [record.enqueue(i) for i in range(len(HOSTILE_OPTIONS))]
    big = record.enqueue("big")
    good = record.enqueue("good")
    _write_hostile_rows(harness.url, jobs, big)
    worker = harness.start("worker", "--concurrency", "2")
    assert good.wait(timeout=10).state is JobState.SUCCEEDED
    _assert_refused(jobs, big)
    for job in [*jobs, big]:
        assert harness.runs_of(job.id, "done") == 0  # no child ever ran it
        assert job.record.crashes == 0
    assert "event=worker.error" not in worker.log()


def test_the_inline_runner_refuses_the_same_rows(tmp_path: Path) -> None:
    app = Offload(f"sqlite:///{tmp_path / 'inline.db'}")

    @app.task(name="echo")
    def echo(value: Any) -> Any:
        return value

    try:
        jobs = [echo.enqueue(i) for i in range(len(HOSTILE_OPTIONS))]
        big = echo.enqueue("big")
        good = echo.enqueue("good")
        _write_hostile_rows(app.settings.url, jobs, big)
        assert run_pending(app) == len(jobs) + 2
        assert good.refresh().result() == "good"
        _assert_refused(jobs, big)
    finally:
        app.close()
