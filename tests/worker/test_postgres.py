"""The worker on PostgreSQL: the same supervisor, a LISTEN waiter without a descriptor."""

from __future__ import annotations

import signal

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


def test_worker_on_postgres_is_woken_by_notify_and_survives_a_child_kill(
    pg_harness: Harness,
) -> None:
    h = pg_harness
    gate = h.gate()
    worker = h.start("worker", "--concurrency", "2", poll_interval=30)
    wait_for(lambda: len(h.processes()) == 3, timeout=15, what="worker up")

    # Only NOTIFY can start these soon: the poll interval is 30 s.
    victim = h.task("gated").enqueue(str(gate))
    quick = h.task("record").enqueue(3)
    assert quick.wait(timeout=5).result() == 3
    child = wait_for(lambda: h.child_running(victim.id), timeout=10, what="child row")
    h.signal_pid(child.pid, signal.SIGKILL)
    wait_for(lambda: h.runs_of(victim.id, "start") == 2, timeout=10, what="second run")
    gate.touch()

    assert victim.wait(timeout=10).state is JobState.SUCCEEDED
    assert h.runs_of(victim.id) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def test_drain_on_postgres(pg_harness: Harness) -> None:
    jobs = [pg_harness.task("record").enqueue(i) for i in range(4)]

    done = pg_harness.run("drain", "--concurrency", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("drain: 4 jobs run, 4 succeeded, 0 failed")
    assert all(j.refresh().state is JobState.SUCCEEDED for j in jobs)
