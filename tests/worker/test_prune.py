"""A real worker prunes finished jobs past their retention in small batches, on one worker
at a time, and leaves recent and unfinished jobs alone; a drain prunes too."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import psycopg
import pytest

from offload import JobState
from offload.ids import uuid7
from offload.retention import task_retention
from offload.serialization import dumps
from offload.store.sqlite import database_path
from offload.testing import wait_for
from offload.types import NewJob, Outcome
from tests.worker.conftest import Harness

DAY = 86400.0


def age(harness: Harness, seconds: float, *job_ids: str) -> None:
    """Move the jobs' ``finished_at`` this many seconds into the past, in SQL."""
    marks = ",".join("?" * len(job_ids))
    statement = (
        f"UPDATE {{jobs}} SET finished_at = coalesce(finished_at, 0) - ? WHERE id IN ({marks})"
    )
    if harness.url.startswith("sqlite"):
        with sqlite3.connect(database_path(harness.url), isolation_level=None) as conn:
            conn.execute(statement.format(jobs="offload_jobs"), (seconds, *job_ids))
        return
    with psycopg.connect(harness.url, autocommit=True) as pg:
        text = statement.format(jobs="offload.jobs").replace("?", "%s")
        pg.execute(text.encode(), (seconds, *job_ids))


def succeeded(harness: Harness, n: int, **using: Any) -> list[str]:
    """``n`` jobs of ``record`` run to success by the worker (started by the caller)."""
    task = harness.task("record").using(**using) if using else harness.task("record")
    jobs = [task.enqueue(i) for i in range(n)]
    for job in jobs:
        job.wait(timeout=30)
    return [job.id for job in jobs]


def foreign_finished(harness: Harness, options: str) -> str:
    """A job of a task this worker's app does not know, run to success elsewhere."""
    store = harness.app.store
    job_id = uuid7()
    store.job_insert_many([NewJob(job_id, "billing.jobs.invoice", options=options)])
    (claimed,) = store.job_claim(
        worker_id="elsewhere", queues=["default"], tasks=["billing.jobs.invoice"], limit=1,
        lease=30.0,
    )  # fmt: skip
    store.job_write(outcomes=[Outcome(claimed.id, claimed.attempt, JobState.SUCCEEDED, "1")])
    return job_id


def gone(harness: Harness, *job_ids: str) -> bool:
    return all(harness.app.store.job_get(j) is None for j in job_ids)


def pruned_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "event=worker.pruned" in line]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_worker_prunes_old_finished_jobs_and_leaves_the_rest(
    backend: str, request: pytest.FixtureRequest
) -> None:
    harness: Harness = request.getfixturevalue("harness" if backend == "sqlite" else "pg_harness")
    worker = harness.start("worker", "--concurrency", "1", prune_interval=1, prune_batch=2)
    # Given jobs this worker ran, some of them finished long ago ...
    old = succeeded(harness, 5)
    recent = succeeded(harness, 2)
    # ... one whose task keeps its jobs an hour, finished two hours ago (the default would
    # keep it a week), and one that keeps them for ever ...
    hourly = succeeded(harness, 1, retention=3600)
    forever = succeeded(harness, 1, retention="forever")
    # ... a job of a task this worker does not even know, stored with a minute's retention ...
    minute = dumps({"retention": dict(task_retention(60) or ())})
    foreign = foreign_finished(harness, minute)
    # ... and jobs that are not finished: running, queued for later, with an old finished_at.
    running = harness.task("gated").enqueue(str(harness.gate()))
    wait_for(lambda: harness.runs_of(running.id, "start") == 1, timeout=30, what="gated start")
    later = harness.task("record").using(delay=3600).enqueue(0)
    age(harness, 8 * DAY, *old, *forever, running.id, later.id)
    age(harness, 2 * 3600, *hourly, foreign)

    # When the worker's next prunes come round, then those jobs are gone, with their history.
    wait_for(lambda: gone(harness, *old, *hourly, foreign), timeout=30, what="pruned")
    for job_id in old:
        assert harness.app.store.job_events(job_id) == []
    for job_id in (*recent, *forever, running.id, later.id):
        assert harness.app.store.job_get(job_id) is not None
    assert later.refresh().state is JobState.SCHEDULED
    assert running.refresh().state is JobState.RUNNING

    # In batches of at most prune_batch, each logged with its counts (just after its
    # transaction commits, so perhaps after the jobs are seen gone).
    def logged() -> int:
        found = [re.search(r" jobs=(\d+)", line) for line in pruned_lines(worker.log())]
        return sum(int(m.group(1)) for m in found if m)

    wait_for(lambda: logged() >= 7, timeout=10, what="seven pruned jobs logged")
    lines = pruned_lines(worker.log())
    counts = [int(re.search(r" jobs=(\d+)", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert sum(counts) == 7 and max(counts) <= 2, lines
    assert all(" succeeded=" in line and " events=" in line for line in lines)

    harness.gate().touch()
    assert running.wait(timeout=30).state is JobState.SUCCEEDED


def test_one_worker_prunes_while_others_wait(harness: Harness) -> None:
    first = harness.start("worker", "--concurrency", "1", prune_interval=1, prune_batch=1, lease=10)
    second = harness.start(
        "worker", "--concurrency", "1", prune_interval=1, prune_batch=1, lease=10
    )
    old = succeeded(harness, 6)
    age(harness, 8 * DAY, *old)

    wait_for(lambda: gone(harness, *old), timeout=60, what="pruned")

    # (a prune is logged just after its transaction commits, so after the jobs are gone)
    def logged() -> int:
        return len(pruned_lines(first.log())) + len(pruned_lines(second.log()))

    wait_for(lambda: logged() >= 6, timeout=10, what="six prunes logged")
    logs = [pruned_lines(first.log()), pruned_lines(second.log())]
    assert sorted(len(lines) for lines in logs) == [0, 6], logs


def test_a_drain_prunes_a_batch_unless_pruning_is_off(harness: Harness) -> None:
    # Jobs finished long ago, run by a first drain.
    jobs = [harness.task("record").enqueue(i) for i in range(3)]
    assert harness.run("drain", "--concurrency", "1").returncode == 0
    ids = [j.id for j in jobs]
    age(harness, 31 * DAY, *ids)

    off = harness.run("drain", "--concurrency", "1", prune_interval="none")
    assert off.returncode == 0, off.stderr
    assert not gone(harness, ids[0]) and "worker.pruned" not in off.stderr

    on = harness.run("drain", "--concurrency", "1", prune_batch=2)
    assert on.returncode == 0, on.stderr
    lines = pruned_lines(on.stderr)
    assert lines and all(" jobs=2 " in line or " jobs=1 " in line for line in lines), on.stderr
    assert sum(harness.app.store.job_get(j) is None for j in ids) >= 2
