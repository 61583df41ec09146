"""Crashes, timeouts and kills, with real processes. The ledger counts runs."""

from __future__ import annotations

import signal

from offload import JobState
from offload.testing import wait_for
from tests.fixtures.processes import process_gone
from tests.worker.conftest import Harness


def test_job_whose_child_is_sigkilled_runs_again_and_nothing_is_lost(harness: Harness) -> None:
    # Given a worker running one gated job, with five quick jobs behind it
    gate = harness.gate()
    victim = harness.task("gated").enqueue(str(gate))
    others = [harness.task("record").enqueue(i) for i in range(5)]
    harness.start("worker", "--concurrency", "2")
    child = wait_for(lambda: harness.child_running(victim.id), timeout=10, what="child row")

    # When its child is killed mid-job
    harness.signal_pid(child.pid, signal.SIGKILL)
    wait_for(lambda: harness.runs_of(victim.id, "start") == 2, timeout=10, what="second run")
    gate.touch()

    # Then it ran twice, succeeded once, and every other job ran exactly once
    assert victim.wait(timeout=10).state is JobState.SUCCEEDED
    assert victim.record.crashes == 1 and victim.record.errors == 0
    for job in others:
        assert job.wait(timeout=10).state is JobState.SUCCEEDED
        assert harness.runs_of(job.id) == 1
    assert harness.runs_of(victim.id) == 1
    assert any(e.kind == "retry" for e in victim.events())


def test_segfaulting_job_is_quarantined_while_other_jobs_complete(harness: Harness) -> None:
    crasher = harness.task("segfault").enqueue()
    others = [harness.task("record").enqueue(i) for i in range(6)]
    worker = harness.start("worker", "--concurrency", "2")

    assert crasher.wait(timeout=20).state is JobState.QUARANTINED
    assert harness.runs_of(crasher.id, "start") == 3
    assert "SIGSEGV" in crasher.error["message"]  # type: ignore[index]
    for job in others:
        assert job.wait(timeout=10).state is JobState.SUCCEEDED
        assert harness.runs_of(job.id) == 1
    assert "event=job.quarantined" in worker.log()
    assert "event=job.crashed" in worker.log()


def test_child_exiting_mid_job_is_a_crash_and_the_worker_goes_on(harness: Harness) -> None:
    job = harness.task("exit_hard").enqueue(3)
    harness.start("worker", "--concurrency", "1", crash_limit=2)

    assert job.wait(timeout=15).state is JobState.QUARANTINED
    assert "exit code 3" in job.error["message"]  # type: ignore[index]
    after = harness.task("record").enqueue(1)
    assert after.wait(timeout=10).state is JobState.SUCCEEDED


def test_hanging_job_is_killed_at_its_timeout_and_fails(harness: Harness) -> None:
    # `hang` ignores SIGTERM and blocks in pause(): only SIGKILL after kill_grace ends it.
    job = harness.task("hang").enqueue()
    worker = harness.start("worker", "--concurrency", "1", kill_grace=0.5)

    assert job.wait(timeout=15).state is JobState.FAILED
    assert job.error["type"] == "Timeout"  # type: ignore[index]
    assert "timed out after 1 s" in job.error["message"]  # type: ignore[index]
    assert "event=job.timeout" in worker.log()
    after = harness.task("record").enqueue(2)
    assert after.wait(timeout=10).state is JobState.SUCCEEDED  # the child was replaced


def test_killed_supervisor_leaves_jobs_that_another_worker_completes(harness: Harness) -> None:
    # Given a worker with two jobs running
    gate = harness.gate()
    jobs = [harness.task("gated").enqueue(str(gate)) for _ in range(2)]
    first = harness.start("worker", "--concurrency", "2", lease=3)
    children = [wait_for(lambda j=j: harness.child_running(j.id), timeout=10) for j in jobs]

    # When the supervisor is SIGKILLed
    first.signal(signal.SIGKILL)
    first.wait()

    # Then its children stop too, and the jobs wait for their lease to expire
    for child in children:
        wait_for(lambda c=child: process_gone(c.pid), timeout=5, what=f"child {child.pid} gone")
    assert all(j.refresh().state is JobState.RUNNING for j in jobs)
    gate.touch()
    harness.start("worker", "--concurrency", "2", lease=3)
    for job in jobs:
        assert job.wait(timeout=20).state is JobState.SUCCEEDED
        assert job.record.crashes == 1
        assert harness.runs_of(job.id) == 1
        assert harness.runs_of(job.id, "start") == 2


def test_idle_child_that_dies_is_replaced(harness: Harness) -> None:
    worker = harness.start("worker", "--concurrency", "1")
    (child,) = wait_for(
        lambda: [p for p in harness.processes() if p.kind == "child"], timeout=10, what="child"
    )

    harness.signal_pid(child.pid, signal.SIGKILL)

    def replacement() -> list[int]:
        pids = [p.pid for p in harness.processes() if p.kind == "child"]
        return [pid for pid in pids if pid != child.pid]

    wait_for(replacement, timeout=10, what="a new child")
    job = harness.task("record").enqueue(1)
    assert job.wait(timeout=10).state is JobState.SUCCEEDED
    assert "event=child.exited" in worker.log()


def test_frozen_supervisor_whose_lease_was_taken_kills_its_copy_of_the_job(
    harness: Harness,
) -> None:
    # Given a worker running a job, frozen (SIGSTOP) for longer than the lease
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    timings = {"lease": 2, "heartbeat": 0.5}
    frozen = harness.start("worker", "--concurrency", "1", **timings)
    wait_for(lambda: harness.child_running(job.id), timeout=10, what="first run")
    frozen.signal(signal.SIGSTOP)

    # When another worker rescues the job and runs it, and the first worker wakes up
    harness.start("worker", "--concurrency", "1", **timings)
    wait_for(lambda: harness.runs_of(job.id, "start") == 2, timeout=15, what="second run")
    frozen.signal(signal.SIGCONT)

    # Then the first worker learns the lease is gone and kills its copy before it ends
    wait_for(lambda: "event=job.lost" in frozen.log(), timeout=10, what="lease lost")
    gate.touch()
    assert job.wait(timeout=10).state is JobState.SUCCEEDED
    assert job.record.attempt == 2
    assert harness.runs_of(job.id) == 1


def test_timeout_also_ends_the_subprocesses_a_job_started(harness: Harness) -> None:
    job = harness.task("spawn_and_hang").enqueue()
    harness.start("worker", "--concurrency", "1", kill_grace=0.5)

    assert job.wait(timeout=15).state is JobState.FAILED
    (grandchild,) = [row[2] for row in harness.rows("grandchild")]
    wait_for(lambda: process_gone(grandchild), timeout=5, what="the job's subprocess gone")


def test_children_killed_by_the_service_manager_on_stop_are_requeued(harness: Harness) -> None:
    # systemd's default KillMode signals the whole group: children die of SIGTERM while
    # the supervisor is stopping. That is not the job's fault: no crash is counted.
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    worker = harness.start("worker", "--concurrency", "1")
    child = wait_for(lambda: harness.child_running(job.id), timeout=10, what="job running")

    worker.signal(signal.SIGTERM)
    wait_for(lambda: "event=worker.stopping" in worker.log(), timeout=5)
    harness.signal_pid(child.pid, signal.SIGTERM)

    assert worker.wait(timeout=10) == 0
    record = job.refresh().record
    assert record.state is JobState.QUEUED
    assert (record.errors, record.crashes) == (0, 0)
