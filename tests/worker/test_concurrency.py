"""Several worker processes race for the same jobs: each job runs exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from offload import JobState
from offload.testing import wait_for
from tests.worker.conftest import Harness


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_racing_workers_run_every_job_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    harness = Harness(tmp_path, url)
    try:
        # Given three workers of two children each, standing in for three machines, all
        # started before the jobs exist
        workers = [
            harness.start("worker", "--concurrency", "2", hostname=f"machine-{n}") for n in range(3)
        ]
        wait_for(lambda: len(harness.processes()) == 9, timeout=20, what="3 workers up")
        hosts = {p.host for p in harness.processes()}
        assert hosts == {"machine-0", "machine-1", "machine-2"}

        # When 90 jobs are enqueued at once
        jobs = harness.task("record").enqueue_many([(i,) for i in range(90)])

        # Then each succeeds, exactly one run per job, spread over the workers
        assert all(job.wait(timeout=30).state is JobState.SUCCEEDED for job in jobs)
        runs = Counter(row[0] for row in harness.rows("done"))
        assert set(runs) == {job.id for job in jobs}
        assert set(runs.values()) == {1}
        assert all(job.record.attempt == 1 for job in jobs)
        served_by = {job.record.worker_id for job in jobs}
        assert len(served_by) >= 2
        assert all(w.split(":")[0] in hosts for w in served_by)
        assert all(w.popen.poll() is None for w in workers)
    finally:
        harness.close()
