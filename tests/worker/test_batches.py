"""Small batches per child for tiny jobs: bounded waiting, and crashes settled per job.

A worker whose recent jobs took well under a millisecond hands a child up to
``batch_max`` jobs at once. A job behind a long one is handed back unstarted once it
waited ``batch_wait``; a child killed mid-batch costs a crash to the job it ran only.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from offload import Job, JobState
from offload.testing import wait_for
from tests.worker import batch_apps
from tests.worker.conftest import Harness

APP = "tests.worker.batch_apps:app"


def _warm_up(harness: Harness, **settings: object) -> None:
    """Start a one-child worker and run quick jobs until it batches."""
    batch_apps.app.settings = batch_apps.app.settings.replace(url=harness.url)
    batch_apps.app.close()
    harness.start("worker", "--concurrency", "1", app=APP, **settings)
    warm = batch_apps.noop.enqueue_many([(i,) for i in range(40)])
    for job in warm:
        assert job.wait(timeout=15).state is JobState.SUCCEEDED


def _batch_behind_long_job(gate: Path) -> tuple[Job[Any], list[Job[Any]]]:
    """One long job first in claim order, five quick ones behind it, committed together
    (so one claim takes them all; the worker finds them at its next poll)."""
    path = batch_apps.app.settings.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        long_job = batch_apps.gated.using(priority=10, connection=conn).enqueue(str(gate))
        quick = batch_apps.noop.using(connection=conn).enqueue_many([(i,) for i in range(5)])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return long_job, quick


def _started(gate: Path) -> list[str]:
    marker = Path(str(gate) + ".started")
    return marker.read_text().split() if marker.exists() else []


def test_jobs_waiting_behind_a_long_job_are_handed_back_after_batch_wait(
    harness: Harness, tmp_path: Path
) -> None:
    _warm_up(harness, batch_max=8, batch_wait=0.3)
    gate = tmp_path / "gate"
    long_job, quick = _batch_behind_long_job(gate)
    wait_for(lambda: _started(gate), timeout=10, what="long job started")

    # The one child is busy: the quick jobs claimed with the long one went back to the
    # queue (no attempt used, no crash), where any worker can take them.
    def handed_back() -> bool:
        return all(j.refresh().state is JobState.QUEUED for j in quick)

    wait_for(handed_back, timeout=10, what="quick jobs handed back")
    kinds = [[e.kind for e in j.events()] for j in quick]
    assert any(k[:2] == ["started", "requeued"] for k in kinds), kinds
    for job in quick:
        record = job.record
        assert record.crashes == 0 and record.errors == 0

    gate.touch()
    assert long_job.wait(timeout=10).state is JobState.SUCCEEDED
    for job in quick:
        assert job.wait(timeout=10).state is JobState.SUCCEEDED


def test_child_killed_mid_batch_costs_a_crash_to_the_running_job_only(
    harness: Harness, tmp_path: Path
) -> None:
    _warm_up(harness, batch_max=8, batch_wait=60)
    gate = tmp_path / "gate"
    long_job, quick = _batch_behind_long_job(gate)
    wait_for(lambda: _started(gate), timeout=10, what="long job started")
    # Claimed together: the quick jobs wait in the child's batch, running and leased.
    assert all(j.refresh().state is JobState.RUNNING for j in quick)

    os.kill(int(_started(gate)[0]), signal.SIGKILL)
    wait_for(lambda: len(_started(gate)) == 2, timeout=10, what="long job started again")
    gate.touch()

    assert long_job.wait(timeout=10).state is JobState.SUCCEEDED
    assert long_job.record.crashes == 1
    for job in quick:
        assert job.wait(timeout=10).state is JobState.SUCCEEDED
        record = job.record
        assert record.crashes == 0 and record.errors == 0, job
        assert "requeued" in [e.kind for e in job.events()]
