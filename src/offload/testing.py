"""Helpers for tests of code that uses offload (and for offload's own tests)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from offload.app import Offload, StoreReporter
from offload.errors import WaitTimeout
from offload.execution import execute

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Call ``condition`` until it returns something truthy; return that. Raises WaitTimeout
    after ``timeout`` seconds, naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout} s waiting for {what or condition!r}")
        time.sleep(interval)


def run_pending(
    app: Offload, queues: Sequence[str] | None = None, *, max_jobs: int | None = None
) -> int:
    """Run every due job of this app's tasks here, in this process; return how many ran.

    Same claims, leases, retries and records as a worker, without child processes: for
    unit tests of task code.
    """
    queues = list(queues) if queues else sorted({t.options.queue for t in app.tasks.values()})
    worker_id = f"test-{os.getpid()}"
    ran = 0
    while max_jobs is None or ran < max_jobs:
        claimed = app.store.job_claim(
            worker_id=worker_id, queues=queues, tasks=list(app.tasks), limit=1,
            lease=app.settings.lease,
        )  # fmt: skip
        if not claimed:
            return ran
        job = claimed[0]
        outcome = execute(
            app, job, StoreReporter(app.store, job.id, job.attempt), worker_id=worker_id
        )
        app.store.job_record(outcomes=[outcome])
        ran += 1
    return ran


def assert_enqueued(app: Offload, task_name: str, **filters: Any) -> None:
    """Fail unless a waiting job of ``task_name`` exists (kwargs must match if given)."""
    from offload.store.base import JobFilter, JobState

    for state in (JobState.QUEUED, JobState.SCHEDULED):
        for record in app.store.job_list(JobFilter(state=state, task=task_name, limit=1000)):
            job = app.get_job(record.id)
            if all(job.kwargs.get(k) == v for k, v in filters.items()):
                return
    raise AssertionError(f"no waiting job of {task_name!r} matching {filters!r}")
