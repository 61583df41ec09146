"""Wall-clock steps on a SQLite host: two real workers whose wall clocks disagree by hours
(``OFFLOAD_TEST_CLOCK_OFFSET``: how every lease written before a step looks after it).

A worker an hour ahead must not rescue the healthy jobs of the other, nor the other its
jobs; a worker two hours behind must rescue the jobs of a SIGKILLed worker within about a
lease, not two hours later. Leases on SQLite run on the host's monotonic clock."""

from __future__ import annotations

import signal
import sqlite3
import time

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness

HOUR = 3600
TIMINGS = {"lease": 2, "heartbeat": 0.5}


def lease_ends(harness: Harness, job_id: str) -> float | None:
    """The monotonic moment the job's lease ends (moves on at every renewal)."""
    conn = sqlite3.connect(harness.url[len("sqlite:///") :], timeout=30)
    try:
        row = conn.execute("SELECT lease_mono FROM offload_jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None or row[0] is None else float(row[0])


def renewals_seen(harness: Harness, job_ids: list[str], count: int) -> None:
    """Wait until each job's lease was renewed ``count`` times from now: its owner went
    through that many maintenance rounds, each renewing its leases, then rescuing."""
    for job_id in job_ids:
        seen: list[float] = []

        def renewed(job_id: str = job_id, seen: list[float] = seen) -> bool:
            end = lease_ends(harness, job_id)
            if end is not None and (not seen or end > seen[-1]):
                seen.append(end)
            return len(seen) > count

        wait_for(renewed, timeout=30, interval=0.05, what=f"{count} renewals of {job_id}")


def test_workers_an_hour_apart_rescue_none_of_each_others_healthy_jobs(harness: Harness) -> None:
    gates = [harness.gate("first"), harness.gate("second")]
    jobs = [harness.task("gated").enqueue(str(gate)) for gate in gates]
    harness.start("worker", "--concurrency", "1", **TIMINGS)
    wait_for(lambda: harness.rows("start"), timeout=15, what="the first job running")
    harness.start("worker", "--concurrency", "1", test_clock_offset=HOUR, **TIMINGS)
    wait_for(lambda: len(harness.rows("start")) == 2, timeout=15, what="both jobs running")

    # The second worker's clock is an hour ahead: the job it claimed started "in an hour".
    starts = sorted(job.refresh().record.started_at or 0 for job in jobs)
    assert HOUR - 60 < starts[1] - starts[0] < HOUR + 60

    # Both workers renew, then rescue, every half second: four rounds each from now.
    renewals_seen(harness, [job.id for job in jobs], 4)

    for job in jobs:
        record = job.refresh().record
        assert record.state is JobState.RUNNING
        assert (record.attempt, record.crashes) == (1, 0)
        assert "lease_expired" not in [e.kind for e in job.events()]
    for gate in gates:
        gate.touch()
    for job in jobs:
        assert job.wait(timeout=15).state is JobState.SUCCEEDED
        assert job.record.attempt == 1 and harness.runs_of(job.id, "start") == 1


def test_the_jobs_of_a_killed_worker_are_rescued_by_a_worker_two_hours_behind(
    harness: Harness,
) -> None:
    gate = harness.gate()
    job = harness.task("gated").enqueue(str(gate))
    doomed = harness.start("worker", "--concurrency", "1", **TIMINGS)
    wait_for(lambda: harness.runs_of(job.id, "start") == 1, timeout=15, what="the first run")
    harness.start("worker", "--concurrency", "1", test_clock_offset=-2 * HOUR, **TIMINGS)

    doomed.signal(signal.SIGKILL)

    # Its lease ends two hours from now by the rescuer's wall clock; within a lease (2 s)
    # by the host's monotonic one. 30 s of patience covers a loaded machine.
    wait_for(lambda: harness.runs_of(job.id, "start") == 2, timeout=30, what="the second run")
    (rescue,) = [e for e in job.events() if e.kind == "lease_expired"]
    assert rescue.at < time.time() - 2 * HOUR + 60  # by the rescuer's clock, 2 h behind
    gate.touch()
    record = job.wait(timeout=15).record
    assert record.state is JobState.SUCCEEDED and record.attempt == 2 and record.crashes == 1
