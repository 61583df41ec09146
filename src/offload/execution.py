"""Running one claimed job in this process, and deciding what happens after an error.

The same code runs a job in a worker's child process, in a drain, after an HTTP response
and inline in tests, so status, retries and progress behave the same in every mode.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from offload.context import JobContext, Reporter, _reset_current, _set_current
from offload.errors import Cancel, Retry, SerializationError
from offload.serialization import dumps, dumps_limited, loads
from offload.store.base import ClaimedJob, JobState, Outcome
from offload.tasks import backoff_delay, decode_options

if TYPE_CHECKING:
    from offload.app import Offload

TRACEBACK_LIMIT = 32 * 1024


def error_json(type_name: str, message: str, tb: str = "") -> str:
    if len(tb) > TRACEBACK_LIMIT:
        tb = "...\n" + tb[-TRACEBACK_LIMIT:]
    return dumps({"type": type_name, "message": message[:TRACEBACK_LIMIT], "traceback": tb})


def exception_json(exc: BaseException) -> str:
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    tb = "".join(traceback.format_exception(exc))
    return error_json(name, str(exc), tb)


def after_error(
    job: ClaimedJob,
    error: str,
    reason: str,
    *,
    worker_id: str | None,
    delay: float | None = None,
) -> Outcome:
    """Retry with backoff while attempts are left, else fail."""
    errors = job.errors + 1
    if errors < job.max_attempts:
        if delay is None:
            delay = backoff_delay(decode_options(job.options), errors)
        return Outcome(
            job.id, job.attempt, JobState.QUEUED, error=error, delay=delay,
            reason=f"{reason}; retry {errors}/{job.max_attempts - 1} in {delay:.1f} s",
            worker_id=worker_id,
        )  # fmt: skip
    return Outcome(
        job.id, job.attempt, JobState.FAILED, error=error, reason=reason, worker_id=worker_id
    )


def after_crash(
    job: ClaimedJob, error: str, reason: str, *, crash_limit: int, worker_id: str | None
) -> Outcome:
    """Run again at once (a crash does not use up a retry) until ``crash_limit`` crashes,
    then quarantine: a job that keeps killing its process is never retried automatically."""
    crashes = job.crashes + 1
    if crashes >= crash_limit:
        return Outcome(
            job.id, job.attempt, JobState.QUARANTINED, error=error, count_error=False,
            crashed=True, reason=f"{reason}; quarantined after {crashes} crashes",
            worker_id=worker_id,
        )  # fmt: skip
    return Outcome(
        job.id, job.attempt, JobState.QUEUED, error=error, count_error=False, crashed=True,
        reason=f"{reason}; crash {crashes}/{crash_limit}, running it again",
        worker_id=worker_id,
    )  # fmt: skip


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
        error = error_json("TaskNotFound", f"task {job.task!r} is not registered in this app")
        return after_error(job, error, "unknown task", worker_id=worker_id, delay=60.0)
    try:
        args = loads(job.args)
        kwargs = loads(job.kwargs)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("args must be a JSON array and kwargs a JSON object")
    except ValueError as exc:
        error = error_json("PayloadError", f"stored arguments cannot be decoded: {exc}")
        return Outcome(
            job.id, job.attempt, JobState.FAILED, error=error,
            reason="undecodable arguments", worker_id=worker_id,
        )  # fmt: skip
    ctx = JobContext(
        job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt, reporter=reporter,
        max_payload_bytes=app.settings.max_payload_bytes,
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
        error = error_json("Retry", exc.reason)
        return after_error(job, error, exc.reason, worker_id=worker_id, delay=exc.delay)
    except Cancel as exc:
        ctx.flush()
        error = error_json("Cancel", exc.reason)
        return Outcome(
            job.id, job.attempt, JobState.CANCELLED, error=error, count_error=False,
            reason=exc.reason, worker_id=worker_id,
        )  # fmt: skip
    except SerializationError as exc:
        ctx.flush()
        error = exception_json(exc)
        return Outcome(
            job.id, job.attempt, JobState.FAILED, error=error,
            reason=f"result is not strict JSON: {exc}", worker_id=worker_id,
        )  # fmt: skip
    except MemoryError as exc:
        ctx.flush()
        limit = decode_options(job.options).get("memory_limit")
        message = f"memory limit exceeded ({limit} bytes)" if limit else "out of memory"
        error = error_json("MemoryError", message, "".join(traceback.format_exception(exc)))
        return after_error(job, error, message, worker_id=worker_id)
    except (Exception, SystemExit) as exc:
        ctx.flush()
        return after_error(
            job, exception_json(exc), f"{type(exc).__name__}: {exc}", worker_id=worker_id
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
