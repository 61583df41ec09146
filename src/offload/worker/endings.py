"""How a run in the job pool ends when its child does not report it: the outcome of a job
whose child died or was stopped, of a batch job handed back unstarted, and the log event
each outcome is announced with."""

from __future__ import annotations

import signal

from offload.retry import after_crash, after_error
from offload.types import ClaimedJob, ErrorInfo, JobState, Outcome
from offload.worker.slots import Ending, Slot

#: Exit codes of a child killed by a stop signal.
_STOP_SIGNALS = (-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP)


def death_outcome(
    slot: Slot,
    job: ClaimedJob,
    exit_text: str,
    *,
    stopping: bool,
    crash_limit: int,
    worker_id: str,
    cancel_grace: float = 0.0,
) -> Outcome | None:
    """What to record for ``job`` when ``slot``'s child exited while running it: nothing
    for a lost lease, ``cancelled`` for a job stopped after its cancel was asked, an error
    for a timeout, a requeue for a stop, else a crash."""
    if slot.ending is Ending.LOST:
        return None
    if slot.ending is Ending.CANCELLED:
        text = (
            f"cancel requested; the job did not stop within {cancel_grace:g} s, so its "
            "child process was stopped"
        )
        return Outcome(
            job.id, job.attempt, JobState.CANCELLED, error=ErrorInfo("Cancelled", text).to_json(),
            count_error=False, reason=text, worker_id=worker_id,
        )  # fmt: skip
    if slot.ending is Ending.TIMEOUT:
        text = f"timed out after {job.timeout:g} s"
        return after_error(job, ErrorInfo("Timeout", text), text, worker_id=worker_id)
    if slot.ending is Ending.SHUTDOWN or stopped_from_outside(slot, stopping=stopping):
        return Outcome(
            job.id, job.attempt, JobState.QUEUED, count_error=False,
            reason="worker stopped before the job finished; requeued", worker_id=worker_id,
        )  # fmt: skip
    message = f"the child process running the job died ({exit_text})"
    return after_crash(
        job, ErrorInfo("WorkerCrash", message), f"child {slot.pid} {exit_text}",
        crash_limit=crash_limit, worker_id=worker_id,
    )  # fmt: skip


def stopped_from_outside(slot: Slot, *, stopping: bool) -> bool:
    """A child killed by a stop signal while the worker stops: a service manager
    signalling the whole group (systemd's default KillMode), not a crash of the job."""
    return stopping and slot.child.exitcode in _STOP_SIGNALS


def handed_back(job: ClaimedJob, *, batch_wait: float, worker_id: str) -> Outcome:
    """A claimed job of a batch that never started: requeued without using an attempt."""
    return Outcome(
        job.id, job.attempt, JobState.QUEUED, count_error=False,
        reason=f"handed back unstarted after waiting {batch_wait:g} s in a batch",
        worker_id=worker_id,
    )  # fmt: skip


def event_of(outcome: Outcome) -> str:
    """The log event of an outcome: ``job.succeeded``, ``job.retry``, ``job.crashed``..."""
    state = outcome.state
    if state is JobState.QUEUED:
        if outcome.crashed:
            return "job.crashed"
        return "job.retry" if outcome.count_error else "job.requeued"
    if state is JobState.QUARANTINED:
        return "job.quarantined"
    return f"job.{state.value}"
