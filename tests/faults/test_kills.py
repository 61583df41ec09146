"""Killed processes: a child, a whole worker, a supervisor alone, and a graceful SIGTERM.

Each scenario runs on SQLite and PostgreSQL against real worker processes; the ledger
(tests/faults/apps.py) says which jobs ran, the store says what it recorded.
"""

from __future__ import annotations

import random
import signal
import time

from offload.testing import wait_for
from offload.types import JobState, Outcome
from tests.faults.harness import FaultHarness, elapsed, figure, kill
from tests.fixtures.processes import process_gone


def _running_victim(h: FaultHarness, spared: set[str]) -> tuple[str, int, int] | None:
    """A random job that started and has not finished: (job id, attempt, child pid)."""
    done = {(r[0], r[1]) for r in h.rows("done")}
    running = [
        (job_id, attempt, pid)
        for job_id, attempt, pid, _ in h.rows("start")
        if (job_id, attempt) not in done and job_id not in spared
    ]
    return random.choice(running) if running else None


def test_child_sigkilled_five_times_during_500_jobs(faults: FaultHarness) -> None:
    h = faults
    jobs = h.task("work").enqueue_many([("kill-child", i, 30) for i in range(500)])
    ids = [j.id for j in jobs]
    worker = h.start("--concurrency", "2")
    wait_for(lambda: len(h.children(worker)) == 2, timeout=15, what="two children")

    killed: set[str] = set()
    recoveries = []
    while len(recoveries) < 5:
        _, _, pid = wait_for(lambda: _running_victim(h, killed), timeout=15, what="a job in flight")
        kill(pid)
        at = time.monotonic()
        wait_for(lambda pid=pid: process_gone(pid), timeout=5, what=f"child {pid} gone")
        # What the child was running when it died: its last start row (a job that had
        # just reported its outcome was done; the kill then hit the child between jobs).
        job_id, attempt = [(r[0], r[1]) for r in h.rows("start") if r[2] == pid][-1]
        record = h.app.store.job_get(job_id)
        assert record is not None
        if record.state is JobState.SUCCEEDED and record.attempt == attempt:
            continue
        killed.add(job_id)

        def rerun(job_id: str = job_id, attempt: int = attempt) -> bool:
            return any(r[0] == job_id and r[1] > attempt for r in h.rows("start"))

        # The killed job runs again within 3 s, in a replacement child.
        wait_for(rerun, timeout=3, what=f"job {job_id} running again")
        recoveries.append(elapsed(at))
        wait_for(
            lambda pid=pid: pid not in h.children(worker) and len(h.children(worker)) == 2,
            timeout=5, what="the killed child replaced",
        )  # fmt: skip

    wait_for(lambda: h.done_count(ids) == 500, timeout=60, what="all 500 jobs done")
    assert worker.popen.poll() is None
    verdict = h.verify(ids, may_repeat=killed)
    print(
        figure(
            "child-sigkill", h.backend, jobs=500, kills=5, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), recovery_s=max(recoveries),
        )
    )  # fmt: skip
    verdict.assert_clean()
    for job_id in killed:
        record = h.app.store.job_get(job_id)
        assert record is not None and record.crashes >= 1


def test_whole_worker_sigkilled_at_30_percent_of_2000_jobs(faults: FaultHarness) -> None:
    h = faults
    jobs = h.task("work").enqueue_many([("kill-worker", i, 0) for i in range(2000)])
    ids = [j.id for j in jobs]
    old = h.start("--concurrency", "2")
    wait_for(lambda: h.ledger_count() >= 600, timeout=60, what="30 % of the jobs done")

    # SIGKILL the supervisor and its children at the same moment.
    pids = [old.pid, *h.children(old)]
    for pid in pids:
        kill(pid)
    at = time.monotonic()
    old.wait()
    for pid in pids:
        wait_for(lambda pid=pid: process_gone(pid), timeout=5, what=f"old process {pid} gone")
    held = [r[0] for r in h.sql("SELECT id FROM {jobs} WHERE state = 'running'")]
    assert held, "the worker held no job when it was killed"

    new = h.start("--concurrency", "2")
    wait_for(lambda: h.done_count(held) == len(held), timeout=30, what="held jobs done again")
    recovery = elapsed(at)
    wait_for(lambda: h.done_count(ids) == 2000, timeout=90, what="all 2000 jobs done")
    assert new.popen.poll() is None
    assert all(process_gone(pid) for pid in pids)
    verdict = h.verify(ids, may_repeat=held)
    print(
        figure(
            "worker-sigkill", h.backend, jobs=2000, held=len(held), lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), recovery_s=recovery,
        )
    )  # fmt: skip
    verdict.assert_clean()
    for job_id in held:
        record = h.app.store.job_get(job_id)
        assert record is not None and record.attempt >= 2


def test_supervisor_sigkilled_alone(faults: FaultHarness) -> None:
    h = faults
    jobs = h.task("work").enqueue_many([("kill-supervisor", i, 20) for i in range(300)])
    ids = [j.id for j in jobs]
    old = h.start("--concurrency", "2")
    wait_for(lambda: h.ledger_count() >= 50, timeout=30, what="50 jobs done")
    children = h.children(old)
    assert len(children) == 2

    old.signal(signal.SIGKILL)
    at = time.monotonic()
    old.wait()
    # Its children stop (the parent-death signal) and claim nothing more.
    for pid in children:
        wait_for(lambda pid=pid: process_gone(pid), timeout=5, what=f"child {pid} gone")
    children_gone = elapsed(at)
    started = len(h.rows("start"))
    held = {r[0]: r[2] for r in h.sql("SELECT id, state, attempt FROM {jobs}") if r[1] == "running"}
    assert held, "the supervisor held no job when it was killed"
    assert len(h.rows("start")) == started

    new = h.start("--concurrency", "2")
    wait_for(lambda: h.done_count(held) == len(held), timeout=30, what="held jobs done again")
    recovery = elapsed(at)

    # A completion from the dead worker's run (attempt n) arriving now is refused.
    job_id, stale_attempt = next(iter(held.items()))
    stale = Outcome(job_id, stale_attempt, JobState.SUCCEEDED, result="0", worker_id="ghost")
    assert h.app.store.job_write(outcomes=[stale]) == [False]
    assert any(e.kind == "refused" for e in h.app.store.job_events(job_id))

    wait_for(lambda: h.done_count(ids) == 300, timeout=60, what="all 300 jobs done")
    assert new.popen.poll() is None
    verdict = h.verify(ids, may_repeat=set(held))
    print(
        figure(
            "supervisor-sigkill", h.backend, jobs=300, held=len(held),
            lost=len(verdict.lost), duplicates=len(verdict.duplicates),
            children_gone_s=children_gone, recovery_s=recovery,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert verdict.refused >= 1


def test_sigterm_with_jobs_in_flight(faults: FaultHarness) -> None:
    h = faults
    long = (
        h.task("work")
        .using(priority=10)
        .enqueue_many([("sigterm-long", i, 1500) for i in range(2)])
    )
    queued = h.task("work").enqueue_many([("sigterm-queued", i, 0) for i in range(200)])
    worker = h.start("--concurrency", "2")
    long_ids = {j.id for j in long}
    wait_for(
        lambda: {r[0] for r in h.rows("start")} >= long_ids, timeout=15, what="long jobs running"
    )

    worker.signal(signal.SIGTERM)
    at = time.monotonic()
    assert worker.wait(timeout=20) == 0
    stop = elapsed(at)

    # The jobs in flight finished and were recorded; the queued ones kept every attempt.
    for job in long:
        record = job.refresh().record
        assert record.state is JobState.SUCCEEDED, record
    records = [j.refresh().record for j in queued]
    waiting = [r for r in records if r.state is JobState.QUEUED]
    assert all((r.attempt, r.errors, r.crashes) == (0, 0, 0) for r in waiting)
    assert len(waiting) == 200, f"{200 - len(waiting)} queued jobs were touched"

    h.start("--concurrency", "2")
    ids = [j.id for j in (*long, *queued)]
    wait_for(lambda: h.done_count(ids) == len(ids), timeout=30, what="all jobs done")
    verdict = h.verify(ids)
    print(
        figure(
            "sigterm-in-flight", h.backend, jobs=len(ids), lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), recovery_s=stop,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert not verdict.duplicates
