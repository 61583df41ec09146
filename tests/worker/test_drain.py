"""The cron drain: runs until empty, prints a summary, one at a time per queue set."""

from __future__ import annotations

import sqlite3

from offload import JobState
from offload.testing import wait_for
from offload.worker import drain_lock_name
from tests.worker.conftest import Harness


def test_drain_runs_every_due_job_and_exits_0_with_a_summary(harness: Harness) -> None:
    jobs = [harness.task("record").enqueue(i) for i in range(6)]
    failing = harness.task("exit_hard").using(retries=0).enqueue(1)

    done = harness.run("drain", "--concurrency", "2", crash_limit=1)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drain: 7 runs: 6 succeeded, 0 retried, 1 failed, 0 refused in ")
    assert all(j.refresh().state is JobState.SUCCEEDED for j in jobs)
    assert failing.refresh().state is JobState.QUARANTINED
    assert len(harness.rows("done")) == 6


def test_drain_stops_after_max_jobs(harness: Harness) -> None:
    jobs = [harness.task("record").enqueue(i) for i in range(5)]

    done = harness.run("drain", "--concurrency", "1", "--max-jobs", "2")

    assert done.returncode == 0, done.stderr
    assert "2 runs: 2 succeeded" in done.stdout
    states = [j.refresh().state for j in jobs]
    assert states.count(JobState.SUCCEEDED) == 2
    assert states.count(JobState.QUEUED) == 3


def test_two_drains_at_once_never_both_run(harness: Harness) -> None:
    # Given a drain busy with a long job (it holds the lock while it runs)
    gate = harness.gate()
    long = harness.task("gated").enqueue(str(gate))
    first = harness.start("drain", "--concurrency", "1")
    wait_for(lambda: harness.runs_of(long.id, "start") == 1, timeout=10, what="first drain")
    quick = harness.task("record").enqueue(1)

    # When a second drain of the same queues starts
    second = harness.run("drain", "--concurrency", "1")

    # Then it exits 0 at once without running anything
    assert second.returncode == 0, second.stderr
    assert "another drain holds the lock drain:default" in second.stdout
    assert harness.runs_of(quick.id) == 0
    gate.touch()
    assert first.wait(timeout=15) == 0
    assert long.refresh().state is JobState.SUCCEEDED
    assert quick.refresh().state is JobState.SUCCEEDED  # the first drain took it after
    assert "drain: 2 runs: 2 succeeded, 0 retried, 0 failed, 0 refused" in first.log()


def test_drain_registers_in_the_process_table(harness: Harness) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    drain = harness.start("drain", "--concurrency", "1")
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="drain child")

    kinds = {p.kind for p in harness.processes()}

    gate.touch()
    assert drain.wait(timeout=10) == 0
    assert kinds == {"drain", "child"}


def test_drain_budget_ends_the_drain(harness: Harness) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))

    done = harness.run("drain", "--budget", "0.5", "--concurrency", "1", shutdown_grace=0.5)

    assert done.returncode == 0, done.stderr
    assert "0 runs: 0 succeeded" in done.stdout
    assert job.refresh().state is JobState.QUEUED and job.record.errors == 0


def test_drain_counts_runs_queued_again_after_an_error_as_retried(harness: Harness) -> None:
    jobs = [harness.task("always_fails").enqueue() for _ in range(4)]

    done = harness.run("drain", "--concurrency", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drain: 4 runs: 0 succeeded, 4 retried, 0 failed, 0 refused")
    assert all(j.refresh().state is JobState.SCHEDULED for j in jobs)  # retry in an hour


def test_drain_counts_a_run_whose_outcome_the_store_refused_as_refused(
    harness: Harness,
) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    drain = harness.start("drain", "--concurrency", "1")
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=10, what="job started")

    # Another worker took the job meanwhile (as a rescue and a new claim would): the
    # drain's outcome is stale, whether its heartbeat notices first or its write does.
    path = harness.url.removeprefix("sqlite:///")
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("UPDATE offload_jobs SET attempt = attempt + 1 WHERE id = ?", (job.id,))
    gate.touch()

    assert drain.wait(timeout=20) == 0
    assert "drain: 1 run: 0 succeeded, 0 retried, 0 failed, 1 refused" in drain.log()
    assert "runs=1 succeeded=0 retried=0 failed=0 refused=1" in drain.log()  # worker.stopped
    (row,) = [p for p in harness.processes("stopped") if p.kind == "drain"]
    assert (row.served, row.failed) == (0, 0)


def test_drain_lock_is_named_after_the_sorted_queues() -> None:
    assert drain_lock_name(["mail", "default"]) == "drain:default,mail"


def test_a_stopped_drain_leaves_its_final_counts_in_the_process_table(harness: Harness) -> None:
    for i in range(5):
        harness.task("record").enqueue(i)

    done = harness.run("drain", "--concurrency", "1")

    assert done.returncode == 0, done.stderr
    (row,) = [p for p in harness.processes("stopped") if p.kind == "drain"]
    assert row.served == 5
    assert '"heartbeat": 1.0' in row.info
