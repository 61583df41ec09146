"""Running jobs: :func:`execute` runs one claimed job, :class:`Runner` claims, runs and
records jobs in this process.

The same code runs a job in a worker's child process, in a drain, after an HTTP response
and inline in tests, so status, retries and progress behave the same in every mode. A
worker's child calls :func:`execute` and reports over its pipe; every mode that runs jobs
in the calling process (inline, the test helpers, after a response) uses :class:`Runner`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from offload.boundary import job_problem, refused_row
from offload.context import JobContext, _reset_current, _set_current
from offload.errors import Cancel, Retry, SerializationError
from offload.reporters import Reporter, StoreReporter
from offload.retry import UNKNOWN_TASK_DELAY, after_error
from offload.serialization import decode_options, dumps_limited, loads
from offload.types import ClaimedJob, ErrorInfo, JobState, Outcome

if TYPE_CHECKING:
    from offload.app import Offload


def execute(
    app: Offload,
    job: ClaimedJob,
    reporter: Reporter,
    *,
    worker_id: str | None = None,
    run_coroutine: Callable[[Any], Any] | None = None,
) -> Outcome:
    """Run a claimed job here; return the outcome to record (never raises for job errors)."""
    task = app.tasks.get(job.task)
    if task is None:
        error = ErrorInfo("TaskNotFound", f"task {job.task!r} is not registered in this app")
        return after_error(
            job, error, "unknown task", worker_id=worker_id, delay=UNKNOWN_TASK_DELAY
        )
    try:
        args = loads(job.args)
        kwargs = loads(job.kwargs)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a JSON array and kwargs a JSON object")
    except ValueError as exc:
        error = ErrorInfo("PayloadError", f"stored arguments cannot be decoded: {exc}")
        return Outcome(
            job.id, job.attempt, JobState.FAILED, error=error.to_json(),
            reason="undecodable arguments", worker_id=worker_id,
        )  # fmt: skip
    ctx = JobContext(
        job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt, reporter=reporter,
        max_payload_bytes=app.settings.max_payload_bytes, app=app,
    )  # fmt: skip
    token = _set_current(ctx)
    try:
        if task.options.context:
            value = task.fn(ctx, *args, **kwargs)
        else:
            value = task.fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = (run_coroutine or _run_async)(value)
        result = dumps_limited(value, "result", app.settings.max_payload_bytes)
    except Retry as exc:
        ctx.flush()
        error = ErrorInfo("Retry", exc.reason)
        return after_error(job, error, exc.reason, worker_id=worker_id, delay=exc.delay)
    except Cancel as exc:
        ctx.flush()
        error = ErrorInfo("Cancel", exc.reason)
        return Outcome(
            job.id, job.attempt, JobState.CANCELLED, error=error.to_json(), count_error=False,
            reason=exc.reason, worker_id=worker_id,
        )  # fmt: skip
    except SerializationError as exc:
        ctx.flush()
        return Outcome(
            job.id, job.attempt, JobState.FAILED, error=ErrorInfo.from_exception(exc).to_json(),
            reason=f"result is not strict JSON: {exc}", worker_id=worker_id,
        )  # fmt: skip
    except MemoryError as exc:
        ctx.flush()
        limit = decode_options(job.options).get("memory_limit")
        message = f"memory limit exceeded ({limit} bytes)" if limit else "out of memory"
        error = ErrorInfo("MemoryError", message, "".join(traceback.format_exception(exc)))
        return after_error(job, error, message, worker_id=worker_id)
    except (Exception, SystemExit) as exc:
        ctx.flush()
        return after_error(
            job,
            ErrorInfo.from_exception(exc),
            f"{type(exc).__name__}: {exc}",
            worker_id=worker_id,
        )
    finally:
        _reset_current(token)
    ctx.flush()
    return Outcome(
        job.id, job.attempt, JobState.SUCCEEDED, result=result, reason="", worker_id=worker_id
    )


def _run_async(awaitable: Any) -> Any:
    async def wrapper() -> Any:
        return await awaitable

    return asyncio.run(wrapper())


class Runner:
    """Claims, runs and records jobs here, in this process, renewing the lease meanwhile.

    >>> Runner(app, worker_id="inline-123").run(queues=["default"], job_ids=[job.id])
    """

    def __init__(self, app: Offload, *, worker_id: str) -> None:
        self.app = app
        self.worker_id = worker_id

    def run(
        self,
        *,
        queues: Sequence[str],
        tasks: Sequence[str] | None = None,
        job_ids: Sequence[str] | None = None,
        max_jobs: int | None = None,
    ) -> int:
        """Run due jobs of ``queues`` (only ``job_ids`` if given) of the app's tasks (or
        ``tasks``), one at a time, until none is due or ``max_jobs`` ran; how many ran."""
        names = list(self.app.tasks) if tasks is None else list(tasks)
        ran = 0
        while max_jobs is None or ran < max_jobs:
            claimed = self.app.store.job_claim(
                worker_id=self.worker_id, queues=queues, tasks=names, limit=1,
                lease=self.app.settings.lease, job_ids=job_ids,
            )  # fmt: skip
            if not claimed:
                return ran
            self.run_claimed(claimed[0])
            ran += 1
        return ran

    def run_claimed(self, job: ClaimedJob) -> Outcome:
        """Run a job this runner claimed and record its outcome; returns the outcome."""
        store = self.app.store
        problem = job_problem(job, self.app.settings.max_payload_bytes)
        if problem is not None:
            outcome = refused_row(job, problem, worker_id=self.worker_id)
            if type(job.id) is str and type(job.attempt) is int:
                store.job_write(outcomes=[outcome])
            # else no fenced write can name this run: its lease runs out, and the rescue
            # counts a crash (the job ends quarantined).
            return outcome
        reporter = StoreReporter(store, job.id, job.attempt)
        with _LeaseKeeper(self.app, self.worker_id, job, reporter):
            outcome = execute(self.app, job, reporter, worker_id=self.worker_id)
        store.job_write(outcomes=[outcome])
        return outcome


class _LeaseKeeper:
    """Renews one run's lease every heartbeat while it runs, from a daemon thread, so a
    long job run in this process is not rescued by a worker while it is still running."""

    def __init__(
        self, app: Offload, worker_id: str, job: ClaimedJob, reporter: StoreReporter
    ) -> None:
        self.app, self.worker_id, self.job, self.reporter = app, worker_id, job, reporter
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="offload-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _renew(self) -> None:
        settings = self.app.settings
        runs = [(self.job.id, self.job.attempt)]
        while not self._done.wait(settings.heartbeat):
            try:
                renewed = self.app.store.lease_renew(
                    worker_id=self.worker_id, runs=runs, lease=settings.lease
                )
            except Exception:  # the store is away: the outcome write will tell
                continue
            if self.job.id in renewed.cancel_requested:
                self.reporter.note_cancel()
            if self.job.id in renewed.lost:
                return
