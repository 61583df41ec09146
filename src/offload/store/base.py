"""The storage contract: everything offload asks of a database, in one class.

Both backends (``sqlite.py``, ``postgres.py``) implement :class:`Store` and pass one
conformance suite (``tests/store/test_contract.py``). Methods are named ``noun_verb`` so
they sort by what they act on. Rules every backend keeps:

* **Fencing.** A claim increments ``attempt`` and takes a lease. Every later write about
  that run (progress, messages, saved data, the outcome) names ``(job_id, attempt)`` and
  changes nothing unless the job is still ``running`` with that attempt.
* **Batching.** Methods take sequences and do one transaction per call.
* **The store's clock.** ``run_at``, leases and "now" are measured on the store's clock
  (the file's host for SQLite, the database server for PostgreSQL), never the caller's.
* **Times** are float seconds since the epoch; JSON payloads travel as text.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    """Where a job is in its life. ``scheduled`` is a queued job whose ``run_at`` is ahead."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUARANTINED = "quarantined"

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


#: Columns that build a ClaimedJob, in field order (both backends select these).
CLAIM_COLUMNS = (
    "id, task, queue, args, kwargs, attempt, max_attempts, errors, crashes, timeout, options,"
    " priority"
)


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
    """The claim half of :meth:`Store.job_record_and_claim` (see :meth:`Store.job_claim`)."""

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
class JobRecord:
    """A snapshot of one stored job."""

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


#: Stored columns of a ProcessInfo, in field order (``status`` is computed on read).
PROCESS_COLUMNS = (
    "id, kind, host, pid, parent_id, queues, started_at, heartbeat_at, stopped_at, served,"
    " failed, current_job, rss, peak_rss, info"
)


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


class Store(abc.ABC):
    """The storage contract. See the module docstring for the rules."""

    url: str

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; return the schema version now in place."""

    @abc.abstractmethod
    def schema_check(self) -> None:
        """Raise SchemaError if the database schema is not the one this code expects."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store may be used again (it reconnects)."""

    @abc.abstractmethod
    def now(self) -> float:
        """The store's clock, seconds since the epoch."""

    # -- jobs ----------------------------------------------------------------------------
    @abc.abstractmethod
    def job_insert_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[str]:
        """Insert all jobs in one transaction (all or none); return their ids in order.

        A job whose ``unique_key`` matches an unfinished job is not inserted; the id of
        the existing job is returned in its place. With ``connection``, the insert runs on
        the caller's own connection and commits with the caller's transaction: a
        ``sqlite3.Connection`` on the store's file, or a psycopg 3 ``Connection`` to the
        store's database (anything else raises ConfigError). Nothing is committed on it,
        unless it is an autocommit connection outside a transaction block (then the batch
        commits at once). PostgreSQL wakes workers when that transaction commits; SQLite
        cannot tell, so workers find such jobs at their next poll.
        """

    @abc.abstractmethod
    def job_claim(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
        job_ids: Sequence[str] | None = None,
    ) -> list[ClaimedJob]:
        """Claim up to ``limit`` due jobs of these queues and tasks.

        With ``job_ids``, claim only those of these jobs that are due (inline runs and
        after-response runs claim the job they just stored).

        Highest priority first, then earliest ``run_at``, then oldest; the claimed jobs
        are returned in that order. Each claimed job becomes ``running`` with
        ``attempt + 1`` and a lease of ``lease`` seconds.
        """

    @abc.abstractmethod
    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        """Extend the leases of ``(job_id, attempt)`` runs this worker still holds."""

    @abc.abstractmethod
    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        """Requeue running jobs whose lease expired (counted as a crash of that run).

        A job that reaches ``crash_limit`` crashes is quarantined instead.
        """

    @abc.abstractmethod
    def job_record(
        self,
        *,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> list[bool]:
        """Write progress, messages, saved values and outcomes in one transaction.

        Every write is fenced on ``(job_id, attempt)`` of a running job; a stale one changes
        nothing. Returns, for each outcome, whether it was accepted.
        """

    @abc.abstractmethod
    def job_record_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """:meth:`job_record` then :meth:`job_claim`, in one transaction (one commit).

        A worker's turn: the outcomes of the runs that just ended and the claim of the
        next jobs cost one commit, not two. The writes come first, so a job requeued to
        run now may be claimed again by the same call. All or nothing: when it raises,
        nothing was recorded and nothing claimed. Returns what ``job_record`` returns and
        what ``job_claim`` returns.
        """

    @abc.abstractmethod
    def job_get(self, job_id: str) -> JobRecord | None:
        """The job with this id, or None."""

    @abc.abstractmethod
    def job_list(self, filter: JobFilter) -> list[JobRecord]:
        """Jobs matching ``filter``, newest first."""

    @abc.abstractmethod
    def job_events(self, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first."""

    @abc.abstractmethod
    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        """The job's log lines, oldest first."""

    @abc.abstractmethod
    def job_cancel(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """Cancel: queued/scheduled jobs become ``cancelled``; running ones get
        ``cancel_requested``. Returns the state each existing job is in afterwards."""

    @abc.abstractmethod
    def job_retry(self, job_ids: Sequence[str]) -> list[str]:
        """Queue finished jobs (failed, cancelled, quarantined, succeeded) to run again
        now, with a fresh error and crash count. Returns the ids that were requeued."""

    @abc.abstractmethod
    def job_delete(self, job_ids: Sequence[str]) -> list[str]:
        """Delete jobs that are not running, with their history. Returns deleted ids."""

    @abc.abstractmethod
    def job_counts(self) -> dict[tuple[str, str], int]:
        """Number of jobs by ``(queue, state)``."""

    @abc.abstractmethod
    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        """Delete finished jobs whose ``finished_at`` is older than this many seconds."""

    # -- processes -----------------------------------------------------------------------
    @abc.abstractmethod
    def process_heartbeat(self, processes: Sequence[ProcessInfo]) -> None:
        """Insert or update process rows; ``heartbeat_at`` is set to the store's now."""

    @abc.abstractmethod
    def process_stop(self, process_ids: Sequence[str]) -> None:
        """Mark processes as stopped."""

    @abc.abstractmethod
    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        """All process rows; ``status`` is ``gone`` when the last heartbeat is older than
        ``gone_after`` seconds, ``stopped`` when stopped."""

    @abc.abstractmethod
    def process_prune(self, *, older_than: float) -> int:
        """Delete process rows stopped or gone for longer than this many seconds."""

    # -- locks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lock for ``ttl`` seconds; False if someone else holds it."""

    @abc.abstractmethod
    def lock_release(self, name: str, owner: str) -> None:
        """Release a lock if ``owner`` holds it."""

    # -- wake-ups ------------------------------------------------------------------------
    @abc.abstractmethod
    def waiter(self, queues: Sequence[str]) -> Waiter:
        """Something a worker blocks on until work may be there."""


class Waiter(abc.ABC):
    """Blocks until new work may be available for some queues, or a timeout passes."""

    def selectable(self) -> int | None:
        """A file descriptor that becomes readable when a wake-up may have arrived (then
        ``wait(0)`` reads it), for a caller that waits on other things too; None when
        there is none right now (the caller then calls :meth:`wait` itself)."""
        return None

    @abc.abstractmethod
    def wait(self, timeout: float) -> bool:
        """Return True if woken by a signal, False on timeout."""

    @abc.abstractmethod
    def close(self) -> None: ...
