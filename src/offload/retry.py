"""The retry policy, whole: how long to wait after an error, when to give up, what a crash
costs.

* An **error** (the task raised, timed out, or ran out of memory) uses up an attempt. While
  attempts are left the job is queued again after a backoff; then it fails.
* A **crash** (the process running the job died) uses up no attempt: the job runs again at
  once, until it has crashed ``crash_limit`` times; then it is quarantined and never retried
  automatically, since a job that keeps killing its process would take its worker with it.

Every run mode (worker pool, drain, inline, test helpers) decides through these functions.
"""

from __future__ import annotations

import random
from typing import Any

from offload.serialization import decode_options
from offload.types import ClaimedJob, ErrorInfo, JobState, Outcome

#: Longest exponential backoff, in seconds.
BACKOFF_MAX = 3600.0
#: How long a job of a task this process does not know waits before it is tried again.
UNKNOWN_TASK_DELAY = 60.0


def backoff_delay(options: dict[str, Any], errors: int) -> float:
    """Seconds to wait before the retry that follows the ``errors``-th error.

    ``options["backoff"]`` is the base delay of an exponential backoff with jitter
    (``base * 2**(n-1)``, times a random factor in [0.5, 1], capped at one hour), or an
    explicit list of delays, one per retry (the last repeats).
    """
    backoff = options.get("backoff", 2.0)
    n = max(1, errors)
    if isinstance(backoff, list):
        return float(backoff[min(n, len(backoff)) - 1]) if backoff else 0.0
    delay = min(BACKOFF_MAX, float(backoff) * 2.0 ** min(n - 1, 40))
    return delay * (0.5 + random.random() / 2)


def after_error(
    job: ClaimedJob,
    error: ErrorInfo,
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
            job.id, job.attempt, JobState.QUEUED, error=error.to_json(), delay=delay,
            reason=f"{reason}; retry {errors}/{job.max_attempts - 1} in {delay:.1f} s",
            worker_id=worker_id,
        )  # fmt: skip
    return Outcome(
        job.id, job.attempt, JobState.FAILED, error=error.to_json(), reason=reason,
        worker_id=worker_id,
    )  # fmt: skip


def after_crash(
    job: ClaimedJob, error: ErrorInfo, reason: str, *, crash_limit: int, worker_id: str | None
) -> Outcome:
    """Run again at once (a crash does not use up a retry) until ``crash_limit`` crashes,
    then quarantine."""
    crashes = job.crashes + 1
    if crashes >= crash_limit:
        return Outcome(
            job.id, job.attempt, JobState.QUARANTINED, error=error.to_json(), count_error=False,
            crashed=True, reason=f"{reason}; quarantined after {_crashes(crashes)}",
            worker_id=worker_id,
        )  # fmt: skip
    return Outcome(
        job.id, job.attempt, JobState.QUEUED, error=error.to_json(), count_error=False,
        crashed=True, reason=f"{reason}; crash {crashes}/{crash_limit}, running it again",
        worker_id=worker_id,
    )  # fmt: skip


def _crashes(n: int) -> str:
    return "1 crash" if n == 1 else f"{n} crashes"
