"""A cancel request is not forgotten by a run that ignores it: a job asked to cancel that
then raises an ordinary error, or whose child is killed, ends ``cancelled`` after that one
run instead of being retried (the retry's claim would clear the request and run it again).
Real workers, real signals, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.worker import cancel_apps
from tests.worker.conftest import Harness

APP = "tests.worker.cancel_apps:app"


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness: Harness = request.getfixturevalue(
        "harness" if request.param == "sqlite" else "pg_harness"
    )
    app = cancel_apps.app
    app.settings = app.settings.replace(url=harness.url, lease=5.0, heartbeat=1.0)
    app.close()
    yield harness
    app.close()


def task(name: str) -> Any:
    return cancel_apps.app.tasks[f"tests.worker.cancel_apps.{name}"]


def cancel_once_seen_running(harness: Harness, job: Any) -> int:
    """Cancel ``job`` once it runs, wait until its code saw the request; its child's pid."""
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=20, what="the job running")
    assert job.cancel() is JobState.RUNNING
    (row,) = wait_for(lambda: harness.rows("cancel_seen"), timeout=20, what="the cancel seen")
    pid: int = row[2]
    return pid


def assert_cancelled_after_one_run(harness: Harness, job: Any, after: str) -> None:
    record = job.wait(timeout=30).record
    assert record.state is JobState.CANCELLED
    assert record.attempt == 1
    assert harness.runs_of(job.id, "start") == 1
    last = job.events()[-1]
    assert (last.kind, last.message) == (
        "cancelled",
        f"cancel requested; not retried after {after}",
    )


def test_a_job_that_raises_after_a_cancel_request_ends_cancelled(stores: Harness) -> None:
    harness = stores
    job = task("raise_after_cancel").enqueue()
    harness.start("worker", "--concurrency", "1", app=APP)

    cancel_once_seen_running(harness, job)

    assert_cancelled_after_one_run(harness, job, "ValueError: cleanup failed")
    assert job.refresh().record.errors == 1  # the run's error is kept, and counted
    assert job.error is not None and job.error["message"] == "cleanup failed"


def test_a_job_whose_child_is_killed_after_a_cancel_request_ends_cancelled(
    stores: Harness,
) -> None:
    harness = stores
    job = task("hang_after_cancel").enqueue()
    harness.start("worker", "--concurrency", "1", app=APP)

    pid = cancel_once_seen_running(harness, job)
    os.kill(pid, signal.SIGKILL)

    assert_cancelled_after_one_run(
        harness, job, "WorkerCrash: the child process running the job died (killed by SIGKILL)"
    )
    assert job.refresh().record.crashes == 1


def test_a_job_waiting_for_its_retry_shows_no_progress(stores: Harness) -> None:
    harness = stores
    job = task("progress_then_fail").enqueue()
    harness.start("worker", "--concurrency", "1", app=APP)

    record = wait_for(
        lambda: (r := job.refresh().record).state is JobState.SCHEDULED and r,
        timeout=20, what="the retry scheduled",
    )  # fmt: skip
    assert record.attempt == 1 and record.errors == 1
    assert (record.progress.current, record.progress.total, record.progress.message) == (
        0,
        None,
        None,
    )
    assert job.progress.percent is None


@pytest.mark.parametrize("name", ["ignore_cancel", "ignore_cancel_and_sigterm"])
def test_a_running_job_that_ignores_its_cancel_is_stopped_after_the_grace(
    stores: Harness, name: str
) -> None:
    harness = stores
    job = task(name).enqueue()
    harness.start("worker", "--concurrency", "1", app=APP, cancel_grace=1.0, kill_grace=1.0)
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=20, what="the job running")
    asked = time.monotonic()
    assert job.cancel(by="ops") is JobState.RUNNING

    record = job.wait(timeout=30).record
    took = time.monotonic() - asked
    assert record.state is JobState.CANCELLED and record.attempt == 1
    assert took >= 1.0  # the grace is given
    assert harness.runs_of(job.id, "start") == 1  # not retried
    kinds = [(e.kind, e.message) for e in job.events()]
    assert ("cancel_requested", "by ops") in kinds
    assert kinds[-1][0] == "cancelled"
    assert "did not stop within 1 s" in kinds[-1][1]
    assert job.error is not None and job.error["type"] == "Cancelled"
    # The worker goes on: the next job runs in a new child.
    after = task("raise_after_cancel").enqueue()
    wait_for(lambda: harness.runs_of(after.id, "start") == 1, timeout=20, what="the next job")


def test_a_zero_cancel_grace_stops_the_job_at_once(stores: Harness) -> None:
    harness = stores
    job = task("ignore_cancel").enqueue()
    harness.start("worker", "--concurrency", "1", app=APP, cancel_grace=0)
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=20, what="the job running")
    job.cancel()
    record = job.wait(timeout=30).record
    assert record.state is JobState.CANCELLED and record.attempt == 1
    (requested,) = [e for e in job.events() if e.kind == "cancel_requested"]
    assert requested.message.startswith("by ") and "(pid " in requested.message
