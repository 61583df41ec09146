"""Jobs that misbehave: ignore SIGTERM, sleep forever, block in C, segfault, leak memory,
allocate past their cap. Each is stopped from outside while the other jobs keep flowing."""

from __future__ import annotations

import json
import time

from offload.testing import wait_for
from offload.types import JobState
from tests.faults.harness import FaultHarness, figure
from tests.fixtures.processes import process_gone

KILL_GRACE = 1.0


def test_jobs_that_will_not_stop_are_killed_at_timeout_plus_grace(faults: FaultHarness) -> None:
    h = faults
    stuck = [h.task(name).enqueue() for name in ("ignore_term", "sleep_forever", "blocked_in_c")]
    others = h.task("work").enqueue_many([("stuck-neighbours", i, 10) for i in range(100)])
    ids = [j.id for j in others]
    worker = h.start("--concurrency", "2", kill_grace=KILL_GRACE)

    wait_for(lambda: h.done_count(ids) == 100, timeout=60, what="the other jobs done")
    durations = []
    for job in stuck:
        record = job.wait(timeout=30).record
        assert record.state is JobState.FAILED, (job.task_name, record.state)
        error = json.loads(record.error or "{}")
        assert error["type"] == "Timeout"
        assert error["message"] == "timed out after 1 s", error["message"]
        assert record.started_at is not None and record.finished_at is not None
        duration = record.finished_at - record.started_at
        # Killed at timeout + grace (SIGTERM ignored or not), plus one loop turn and write.
        assert duration < 1 + KILL_GRACE + 1.5, (job.task_name, duration)
        if job.task_name.endswith(("ignore_term", "blocked_in_c")):
            assert duration >= 1 + KILL_GRACE - 0.1, (job.task_name, duration)  # SIGKILL
        durations.append(duration)
    assert h.runs_of_started(stuck) == 3
    log = worker.log()
    assert log.count("event=job.timeout") == 3
    assert worker.popen.poll() is None
    verdict = h.verify(ids, ending={j.id: "failed" for j in stuck})
    print(
        figure(
            "stuck-jobs-timeout", h.backend, jobs=103, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), recovery_s=max(durations) - 1,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert not verdict.duplicates


def test_segfaulting_job_is_quarantined_without_a_crash_loop(faults: FaultHarness) -> None:
    h = faults
    crasher = h.task("segfault").enqueue()
    others = h.task("work").enqueue_many([("segfault-neighbours", i, 5) for i in range(200)])
    ids = [j.id for j in others]
    start = time.monotonic()
    worker = h.start("--concurrency", "2")

    record = crasher.wait(timeout=30).record
    quarantined_after = time.monotonic() - start
    assert record.state is JobState.QUARANTINED
    assert record.crashes == 3
    assert "SIGSEGV" in json.loads(record.error or "{}")["message"]
    wait_for(lambda: h.done_count(ids) == 200, timeout=60, what="the healthy jobs done")
    assert sum(1 for r in h.rows("start") if r[0] == crasher.id) == 3
    # No crash loop: the job is never claimed again, and only the 3 crashed children
    # were replaced (2 at boot + 3 replacements).
    log = worker.log()
    assert log.count("event=child.started") == 2 + 3, log.count("event=child.started")
    assert log.count("event=job.quarantined") == 1
    assert worker.popen.poll() is None
    verdict = h.verify(ids, ending={crasher.id: "quarantined"})
    print(
        figure(
            "segfault-quarantine", h.backend, jobs=201, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), crashes=3, recovery_s=quarantined_after,
        )
    )  # fmt: skip
    verdict.assert_clean()
    assert not verdict.duplicates


def test_memory_caps_recycle_the_child_and_fail_the_hog(faults: FaultHarness) -> None:
    h = faults
    cap = 200 * 1024 * 1024
    worker = h.start("--concurrency", "1", child_memory_limit=cap)
    leaker = h.task("leak").enqueue(300)
    leaker_pid = leaker.wait(timeout=30).result()
    finished_at = leaker.record.finished_at

    # The child that holds 300 MB is recycled after that job and a fresh one serves on.
    wait_for(lambda: process_gone(leaker_pid), timeout=10, what="the leaking child recycled")
    recycled_after = max(0.0, time.time() - finished_at)  # an upper bound
    assert "event=child.recycle" in worker.log()
    assert "over child_memory_limit" in worker.log()
    after = h.task("work").enqueue_many([("after-leak", i, 0) for i in range(20)])
    wait_for(lambda: h.done_count([j.id for j in after]) == 20, timeout=20, what="jobs after")
    assert leaker_pid not in {r[2] for r in h.rows("done") if r[0] in {j.id for j in after}}

    # A job that allocates far beyond its task's memory_limit (64 MB) fails with a clear
    # message instead of growing until the kernel's OOM killer steps in.
    hog = h.task("hog").enqueue(16 * 1024)
    record = hog.wait(timeout=30).record
    assert record.state is JobState.FAILED
    error = json.loads(record.error or "{}")
    assert error["type"] == "MemoryError"
    assert "memory limit exceeded" in error["message"], error["message"]
    assert record.crashes == 0
    survivor = h.task("work").enqueue("after-hog", 0)
    assert survivor.wait(timeout=10).state is JobState.SUCCEEDED
    assert worker.popen.poll() is None
    ids = [leaker.id, *(j.id for j in after), survivor.id]
    verdict = h.verify(ids, ending={hog.id: "failed"})
    print(
        figure(
            "memory-caps", h.backend, jobs=len(ids) + 1, lost=len(verdict.lost),
            duplicates=len(verdict.duplicates), recovery_s=recycled_after,
        )
    )  # fmt: skip
    verdict.assert_clean()
