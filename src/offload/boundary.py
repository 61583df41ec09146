"""Checks on a claimed job's row before anything runs it.

A row may have been written into the database by hand, by an older or newer release, or
by a bug: bytes where text belongs, text in a number column, options that are not a JSON
object, arguments over the size limit. Every run mode (worker pool, drain, inline, test
helpers, after-response) asks :func:`job_problem` before it runs a claimed job; a row with
a problem ends ``failed`` at once with a ``DispatchError`` naming the column
(:func:`refused_row`): its row will not change, so retrying it would only fail again,
and running it could crash a child or wedge a slot.

The check is one expression on the common path (a well-formed row), so it costs nothing
measurable per job; options are checked once per distinct text (tasks share theirs).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from offload.errors import SerializationError
from offload.serialization import loads
from offload.types import ClaimedJob, ErrorInfo, JobState, Outcome

_TEXT_FIELDS = ("id", "task", "queue", "args", "kwargs", "options")
_INT_FIELDS = ("attempt", "max_attempts", "errors", "crashes", "priority")

#: The largest ``memory_limit`` (bytes) an option may hold: setrlimit takes 64-bit values.
MAX_MEMORY_LIMIT = 1 << 62


def job_problem(job: ClaimedJob, max_payload_bytes: int) -> str | None:
    """Why ``job`` cannot be run as it is stored, naming the column; None if it can."""
    timeout = job.timeout
    if not (
        type(job.id) is str
        and type(job.task) is str
        and type(job.queue) is str
        and type(job.args) is str
        and type(job.kwargs) is str
        and type(job.options) is str
        and type(job.attempt) is int
        and type(job.max_attempts) is int
        and type(job.errors) is int
        and type(job.crashes) is int
        and type(job.priority) is int
        and (timeout is None or (type(timeout) in (int, float) and 0 <= timeout < math.inf))
    ):
        return _type_problem(job)
    chars = len(job.args) + len(job.kwargs)
    if chars > max_payload_bytes // 4:  # only then count UTF-8 bytes
        size = len(job.args.encode("utf-8", "surrogatepass")) + len(
            job.kwargs.encode("utf-8", "surrogatepass")
        )
        if size > max_payload_bytes:
            return (
                f"args and kwargs hold {size} bytes, over max_payload_bytes ({max_payload_bytes})"
            )
    return options_problem(job.options)


def _type_problem(job: ClaimedJob) -> str:
    for name in _TEXT_FIELDS:
        value = getattr(job, name)
        if type(value) is not str:
            return f"{name} holds {_shown(value)}, expected text"
    for name in _INT_FIELDS:
        value = getattr(job, name)
        if type(value) is not int:
            return f"{name} holds {_shown(value)}, expected an integer"
    return f"timeout holds {_shown(job.timeout)}, expected a number of seconds (or none)"


@functools.lru_cache(maxsize=256)
def options_problem(text: str) -> str | None:
    """What is wrong with a job's stored ``options`` text (a JSON object whose known keys
    hold values of the right kind; unknown keys are left to newer releases); None if
    nothing is."""
    if text == "{}":
        return None
    try:
        value = loads(text)
    except SerializationError as exc:
        return f"options holds text that is not JSON ({exc})"
    if not isinstance(value, dict):
        return f"options holds {_shown(value)}, expected a JSON object"
    if "backoff" in value and not _is_backoff(value["backoff"]):
        return (
            f"options.backoff holds {_shown(value['backoff'])}, expected seconds or a "
            f"non-empty list of seconds"
        )
    limit = value.get("memory_limit")
    if limit is not None and not (type(limit) is int and 0 < limit <= MAX_MEMORY_LIMIT):
        return f"options.memory_limit holds {_shown(limit)}, expected a number of bytes"
    return None


def _is_seconds(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < math.inf


def _is_backoff(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_seconds(v) for v in value)
    return _is_seconds(value)


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def refused_row(job: ClaimedJob, problem: str, *, worker_id: str | None) -> Outcome:
    """The outcome of a claimed job that cannot be run (``problem`` from
    :func:`job_problem`): failed at once, for good, since its row will not change."""
    message = f"cannot dispatch the job: {problem}"
    return Outcome(
        job.id, job.attempt, JobState.FAILED, error=ErrorInfo("DispatchError", message).to_json(),
        reason=message, worker_id=worker_id,
    )  # fmt: skip
