"""Helpers for tests of code that uses offload (and for offload's own tests)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from offload.app import Offload
from offload.errors import WaitTimeout
from offload.execution import Runner
from offload.types import JobFilter, JobState

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
    return Runner(app, worker_id=f"test-{os.getpid()}").run(queues=queues, max_jobs=max_jobs)


def assert_enqueued(app: Offload, task_name: str, **filters: Any) -> None:
    """Fail unless a waiting job of ``task_name`` exists (kwargs must match if given)."""
    for state in (JobState.QUEUED, JobState.SCHEDULED):
        for record in app.store.job_list(JobFilter(state=state, task=task_name, limit=1000)):
            job = app.get_job(record.id)
            if all(job.kwargs.get(k) == v for k, v in filters.items()):
                return
    raise AssertionError(f"no waiting job of {task_name!r} matching {filters!r}")
