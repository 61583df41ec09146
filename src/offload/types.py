"""The types every layer shares: job states, rows, events, messages, process rows, errors.

A leaf module: it imports nothing from offload, so the public API (``jobs.py``), both
stores, the executor and the worker can all use it without importing one another. The
store contract (``store/base.py``) speaks in these types.

* Times are float seconds since the epoch, on the store's clock.
* JSON payloads (arguments, results, options, saved data, errors) travel as text; only
  :class:`ErrorInfo` is decoded here, since every layer reads and writes it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Longest traceback (and message) text kept with an error, in characters.
TRACEBACK_LIMIT = 32 * 1024


class JobState(enum.StrEnum):
    """Where a job is in its life. ``scheduled`` is a queued job whose ``run_at`` is ahead;
    ``waiting`` is a member of a group stage whose previous stage is not complete yet."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUARANTINED = "quarantined"
    #: Last, so that tables listing states keep the columns they had before it.
    WAITING = "waiting"

    @property
    def finished(self) -> bool:
        """True for the terminal states."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUARANTINED}
)
TERMINAL_STATES = tuple(sorted(s.value for s in _TERMINAL))


@dataclass(slots=True)  # not frozen: frozen __init__ costs ~1 us a field in bulk enqueues
class NewJob:
    """A job to insert. ``run_at`` None means ``store now + delay``."""

    id: str
    task: str
    queue: str = "default"
    args: str = "[]"
    kwargs: str = "{}"
    priority: int = 0
    run_at: float | None = None
    delay: float = 0.0
    max_attempts: int = 1
    timeout: float | None = None
    #: JSON object text: per-job options the worker needs (backoff, memory_limit, ...).
    options: str = "{}"
    unique_key: str | None = None
    #: With ``unique_key``: a window in seconds. No second job with the key is stored while
    #: the last one stored with it less than this long ago still exists in one of
    #: ``unique_states`` (any state when empty). An unfinished job holds its key whatever
    #: the window.
    unique_for: float | None = None
    unique_states: tuple[JobState, ...] = ()
    #: With ``unique_key``: a waiting job of the same task holding the key (not started
    #: yet) takes this job's arguments and is pushed back to run ``debounce`` seconds from
    #: now, instead of a second job being stored. The key is not held while a job runs.
    debounce: float | None = None
    #: At most ``limit_max`` jobs with ``limit_key`` run at once, across every worker.
    limit_key: str | None = None
    limit_max: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run one claimed job."""

    id: str
    task: str
    queue: str
    args: str
    kwargs: str
    attempt: int
    max_attempts: int
    errors: int
    crashes: int
    timeout: float | None
    options: str
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one run, written fenced on ``(job_id, attempt)``.

    ``state`` is the next state: a terminal state, or ``QUEUED`` to run again after
    ``delay`` seconds. ``count_error`` False requeues without using up an attempt (graceful
    shutdown); ``crashed`` counts towards quarantine.
    """

    job_id: str
    attempt: int
    state: JobState
    result: str | None = None
    error: str | None = None
    delay: float = 0.0
    count_error: bool = True
    crashed: bool = False
    reason: str = ""
    worker_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """The claim half of :meth:`Store.job_write_and_claim` (see :meth:`Store.job_claim`)."""

    worker_id: str
    queues: Sequence[str]
    tasks: Sequence[str]
    limit: int
    lease: float


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    job_id: str
    attempt: int
    current: float
    total: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class MessageAdd:
    job_id: str
    attempt: int
    text: str


@dataclass(frozen=True, slots=True)
class SaveValue:
    job_id: str
    attempt: int
    key: str
    value: str  # JSON text


@dataclass(frozen=True, slots=True)
class Progress:
    current: float = 0.0
    total: float | None = None
    message: str | None = None

    @property
    def percent(self) -> float | None:
        """``current / total`` as a percentage, or None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(100.0, 100.0 * self.current / self.total))


@dataclass(frozen=True, slots=True)
class JobRow:
    """A snapshot of one stored job, as read from the store."""

    id: str
    task: str
    queue: str
    state: JobState
    priority: int
    args: str
    kwargs: str
    attempt: int
    max_attempts: int
    errors: int
    crashes: int
    created_at: float
    run_at: float
    started_at: float | None
    finished_at: float | None
    leased_until: float | None
    worker_id: str | None
    timeout: float | None
    options: str
    unique_key: str | None
    progress: Progress
    result: str | None
    error: str | None
    saved: str
    cancel_requested: bool
    #: The concurrency limit the job runs under (``limit_max`` at once per key).
    limit_key: str | None = None
    limit_max: int = 0


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's history."""

    at: float
    attempt: int
    kind: str
    worker_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class JobMessage:
    at: float
    attempt: int
    text: str


@dataclass(frozen=True, slots=True)
class RenewResult:
    """What a heartbeat learned: runs whose lease is gone, runs asked to cancel."""

    lost: list[str] = field(default_factory=list)
    cancel_requested: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One row of the process table (a supervisor, child, drain or service)."""

    id: str
    kind: str
    host: str
    pid: int
    parent_id: str | None = None
    queues: str = ""
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    stopped_at: float | None = None
    served: int = 0
    failed: int = 0
    current_job: str | None = None
    rss: int = 0
    peak_rss: int = 0
    info: str = "{}"
    #: Filled on read: running, gone (no heartbeat for 3 intervals) or stopped.
    status: str = "running"


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: JobState | None = None
    queue: str | None = None
    task: str | None = None
    limit: int = 50
    #: Page backwards from this id (ids are time-ordered).
    before_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rescued:
    job_id: str
    attempt: int
    state: JobState


@dataclass(frozen=True, slots=True)
class ScheduleFire:
    """One fire of a periodic schedule, to record together with the job it becomes.

    ``fire_at`` is the fire time as whole seconds since the epoch: the identity of the
    fire, the same integer on every machine that steps the same schedule.
    """

    schedule: str
    fire_at: int
    job: NewJob


@dataclass(frozen=True, slots=True)
class FireRecord:
    """A recorded fire of a schedule: when it was due, the job it became, and when it was
    recorded (on the store's clock)."""

    schedule: str
    fire_at: int
    job_id: str
    recorded_at: float


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What is known of an error: its type, message and traceback text.

    Stored as the JSON object ``{"type", "message", "traceback"}``: the executor writes it
    for an exception, the stores for a lease that expired, and :class:`JobFailed` and the
    CLI read it back.
    """

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        import traceback  # only when a job failed: keeps this leaf module cheap to import

        name = type(exc).__qualname__
        module = type(exc).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        return cls(name, str(exc), "".join(traceback.format_exception(exc)))

    @classmethod
    def from_json(cls, text: str | None) -> ErrorInfo | None:
        """The error stored as ``text``; None for no error. Text that is not the stored
        shape (a row written by hand) still gives an ErrorInfo that says so."""
        if not text:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return cls("Error", f"undecodable stored error: {text[:200]!r}")
        if not isinstance(value, dict):
            return cls("Error", f"stored error is not a JSON object: {text[:200]!r}")
        kind, message, tb = (value.get(k) for k in ("type", "message", "traceback"))
        return cls(
            "Error" if kind is None or kind == "" else str(kind),
            message if isinstance(message, str) else "" if message is None else str(message),
            tb if isinstance(tb, str) else "",
        )

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    def to_json(self) -> str:
        """The stored form; message and traceback cut to :data:`TRACEBACK_LIMIT`."""
        tb = self.traceback
        if len(tb) > TRACEBACK_LIMIT:
            tb = "...\n" + tb[-TRACEBACK_LIMIT:]
        value = {"type": self.type, "message": self.message[:TRACEBACK_LIMIT], "traceback": tb}
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- groups ------------------------------------------------------------------------------------


class GroupState(enum.StrEnum):
    """Where a group is: ``open`` (members may still be added by anyone), ``sealed`` (only
    its running members add members; complete once none is unfinished), ``waiting`` (a
    stage whose previous stage is not complete), ``complete`` (its callback is stored)."""

    OPEN = "open"
    SEALED = "sealed"
    WAITING = "waiting"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """The job a group stores when it completes: a task and its options, called with
    keyword arguments ``group_id``, ``succeeded`` and ``failed``."""

    task: str
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 1
    timeout: float | None = None
    options: str = "{}"


@dataclass(frozen=True, slots=True)
class NewGroup:
    """A group to create. ``after``: the group (stage) that must complete before this
    one's members may run; ``stop_on_failure``: when this group completes with failed
    members, the stages after it do not run (their members end ``cancelled``)."""

    id: str
    name: str | None = None
    callback: CallbackSpec | None = None
    callback_id: str | None = None
    after: str | None = None
    stop_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A snapshot of one stored group. ``failed`` counts every member that ended other
    than ``succeeded`` (failed, cancelled, quarantined)."""

    id: str
    name: str | None
    state: GroupState
    created_at: float
    completed_at: float | None
    total: int
    succeeded: int
    failed: int
    after: str | None
    stop_on_failure: bool
    stopped: bool
    callback_task: str | None
    callback_id: str | None

    @property
    def done(self) -> int:
        """Members in a final state."""
        return self.succeeded + self.failed
