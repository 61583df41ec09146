"""The storage contract: everything offload asks of a database, in one class.

Both backends (``store/sqlite/``, ``store/postgres/``) implement :class:`Store` and pass one
conformance suite (``tests/store/contract/``). Methods are named ``noun_verb`` so
they sort by what they act on. Rules every backend keeps:

* **Fencing.** A claim increments ``attempt`` and takes a lease. Every later write about
  that run (progress, messages, saved data, the outcome) names ``(job_id, attempt)`` and
  changes nothing unless the job is still ``running`` with that attempt.
* **Batching.** Methods take sequences and do one transaction per call.
* **The store's clock.** ``run_at``, leases and "now" are measured on the store's clock
  (the file's host for SQLite, the database server for PostgreSQL), never the caller's.
  SQLite judges leases and heartbeats by the host's monotonic clock where it can (see
  ``store/sqlite/clock.py``), so a step of the wall clock moves no lease.
* **A cancel request outlives the run.** A job with ``cancel_requested`` is never queued
  again: an outcome that would requeue it, or the rescue of its lease, ends it
  ``cancelled`` (``rules.not_retried`` says why).
* **Times** are float seconds since the epoch; JSON payloads travel as text.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from offload.retention import PruneResult, RetentionPolicy
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    FireRecord,
    GroupRow,
    JobEvent,
    JobFilter,
    JobMessage,
    JobRow,
    JobState,
    MessageAdd,
    NewGroup,
    NewJob,
    Outcome,
    ProcessInfo,
    ProgressUpdate,
    RenewResult,
    Rescued,
    SaveValue,
    ScheduleFire,
)


class Store(abc.ABC):
    """The storage contract. See the module docstring for the rules."""

    url: str
    #: Where the store is, for logs and messages: the SQLite file's absolute path, or
    #: PostgreSQL's user, host, port, database and schema. Never a password.
    location: str

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
        ``attempt + 1`` and a lease of ``lease`` seconds; its progress (current, total,
        message) starts again from nothing, as the new attempt reports its own.
        """

    @abc.abstractmethod
    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        """Extend the leases of ``(job_id, attempt)`` runs this worker still holds."""

    @abc.abstractmethod
    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        """Requeue running jobs whose lease expired (counted as a crash of that run).

        A job that reaches ``crash_limit`` crashes is quarantined instead; one whose
        cancel was requested ends ``cancelled``. On SQLite a lease taken on this boot of
        the host expires by the monotonic clock (a wall-clock step changes nothing), and
        one taken on an earlier boot has expired (its owner died with the host).
        """

    @abc.abstractmethod
    def job_write(
        self,
        *,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> list[bool]:
        """Write progress, messages, saved values and outcomes in one transaction.

        Every write is fenced on ``(job_id, attempt)`` of a running job; a stale one changes
        nothing. Returns, for each outcome, whether it was accepted. An outcome that puts
        its job back in the queue clears its progress, or ends it ``cancelled`` if its
        cancel was requested (accepted all the same).
        """

    @abc.abstractmethod
    def job_write_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """:meth:`job_write` then :meth:`job_claim`, in one transaction (one commit).

        A worker's turn: the outcomes of the runs that just ended and the claim of the
        next jobs cost one commit, not two. The writes come first, so a job requeued to
        run now may be claimed again by the same call. All or nothing: when it raises,
        nothing was recorded and nothing claimed. Returns what ``job_write`` returns and
        what ``job_claim`` returns.
        """

    @abc.abstractmethod
    def job_get(self, job_id: str) -> JobRow | None:
        """The job with this id, or None."""

    @abc.abstractmethod
    def job_list(self, filter: JobFilter) -> list[JobRow]:
        """Jobs matching ``filter``, newest first."""

    @abc.abstractmethod
    def job_events(self, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first."""

    @abc.abstractmethod
    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        """The job's log lines, oldest first."""

    @abc.abstractmethod
    def job_cancel(self, job_ids: Sequence[str], *, by: str | None = None) -> dict[str, JobState]:
        """Cancel: queued/scheduled jobs become ``cancelled``; running ones get
        ``cancel_requested`` (their worker stops them after ``cancel_grace``). ``by`` says
        who asked, in the event each job gets (``rules.cancel_message``). Returns the
        state each existing job is in afterwards."""

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
    def job_recount(self) -> None:
        """Rebuild the counts by queue and state that the store keeps for
        :meth:`job_counts` from the jobs themselves (reads every job). Needed only after
        jobs were written in a way the store does not count (see each store)."""

    @abc.abstractmethod
    def job_finished_by_minute(self, minutes: int) -> dict[tuple[float, str], int]:
        """Jobs that finished in the last ``minutes`` whole minutes (the current one
        included, on the store's clock), by ``(start of their minute, state)``: what a
        jobs-per-minute chart draws. Minutes and states with none are left out. Raises
        ConfigError unless ``minutes`` is an int from 1 to ``rules.MAX_MINUTES``.
        """

    @abc.abstractmethod
    def queue_latency(self, queues: Sequence[str]) -> dict[str, float]:
        """How late each of these queues runs: the seconds since the ``run_at`` of its
        oldest due job (queued, ``run_at`` reached), on the store's clock. A queue with
        no due job is left out."""

    @abc.abstractmethod
    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        """Delete finished jobs whose ``finished_at`` is older than this many seconds."""

    @abc.abstractmethod
    def job_prune_expired(self, policy: RetentionPolicy, *, limit: int) -> PruneResult:
        """Delete up to ``limit`` finished jobs past their retention, with their events
        and messages, in one transaction; return what went, by state (``full`` when the
        limit was reached, so more may be due).

        A job of ``policy.states`` is past its retention when its ``finished_at`` is
        older, on the store's clock, than the seconds its task stored in its options
        (``{"retention": {state: seconds or null}}``, see :mod:`offload.retention`;
        ``null`` keeps it for ever) or, when it stores none that can be read or
        ``policy.per_task`` is False, than ``policy.keep[state]``. The oldest go first.
        Queued, scheduled and running jobs are never touched.
        """

    @abc.abstractmethod
    def job_prune_count(self, policy: RetentionPolicy) -> PruneResult:
        """What :meth:`job_prune_expired` would delete now, all batches together
        (reads only)."""

    # -- groups --------------------------------------------------------------------------
    # A member counts as ``succeeded``, or ``failed`` for any other final state. Whatever
    # makes a member final (an outcome, a rescue, a cancel, a delete; a retry makes it
    # unfinished again) updates its group's counters in the same transaction, and
    # completes the group there when it is started, sealed (or stopped) and every member
    # is final: completion stores the callback job (with the id chosen at creation, so at
    # most once) and starts the stages after it, or stops them (their waiting members end
    # ``cancelled``) when the group has ``stop_on_failure`` and a failed member.
    @abc.abstractmethod
    def group_create(self, group: NewGroup) -> GroupRow:
        """Store a new open group. With ``after``, it is a stage: its members wait
        (state ``waiting``) until that group is complete; GroupNotFound if there is no
        such group."""

    @abc.abstractmethod
    def group_add(self, group_id: str, jobs: Sequence[NewJob]) -> list[str]:
        """Insert members of a group in one transaction; return their ids in order.

        A job whose id is already stored is not inserted again nor counted (a retried
        member adding the same members). GroupNotFound for an unknown group, GroupClosed
        (naming it) for a complete one, ConfigError for a member with a unique key."""

    @abc.abstractmethod
    def group_seal(self, group_id: str) -> GroupRow:
        """Seal the group: it completes once every member is final (at once if they
        are). Sealing a sealed or complete group changes nothing. GroupNotFound if none."""

    @abc.abstractmethod
    def group_get(self, group_id: str) -> GroupRow | None:
        """The group with this id, or None."""

    @abc.abstractmethod
    def group_list(self, *, limit: int = 50, before_id: str | None = None) -> list[GroupRow]:
        """Groups newest first (before ``before_id`` if given)."""

    @abc.abstractmethod
    def group_of_job(self, job_id: str) -> str | None:
        """The id of the group this job is a member of, or None."""

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
        ``gone_after`` seconds (or than three of the heartbeat intervals the process or
        its parent published, see ``rules.process_statuses``), ``stopped`` when stopped."""

    @abc.abstractmethod
    def process_prune(self, *, older_than: float) -> int:
        """Delete process rows stopped or gone for longer than this many seconds."""

    @abc.abstractmethod
    def process_tasks_publish(self, process_id: str, tasks: Sequence[str]) -> bool:
        """Record on a process row the task names that process registers (what it can
        run); False when the row does not exist (yet). Heartbeats keep them."""

    @abc.abstractmethod
    def process_tasks_live(self, *, gone_after: float) -> set[str]:
        """The task names registered by processes that are running (as
        :meth:`process_list` judges them with ``gone_after``)."""

    @abc.abstractmethod
    def job_tasks_unserved(self, *, gone_after: float) -> dict[str, int]:
        """Queued and scheduled jobs whose task no running process registers: their
        number, by task name. Such jobs wait until a worker that knows the task starts."""

    # -- locks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a named lock for ``ttl`` seconds; False if someone else holds it."""

    @abc.abstractmethod
    def lock_release(self, name: str, owner: str) -> None:
        """Release a lock if ``owner`` holds it."""

    # -- schedules -----------------------------------------------------------------------
    @abc.abstractmethod
    def schedule_fire(self, fires: Sequence[ScheduleFire]) -> list[str | None]:
        """Record each fire and insert its job, all in one transaction (all or none).

        A fire whose ``(schedule, fire_at)`` is already recorded, by any process or
        earlier in the same batch, is skipped: its job is not inserted and None stands in
        its place. For each fire recorded, the id of its job is returned (for a job whose
        unique key an unfinished job holds, that job's id, as :meth:`job_insert_many`
        returns it). The fire record is what makes each fire one job across every
        scheduler of the store; the rules of ``rules.check_fires`` are enforced first.
        """

    @abc.abstractmethod
    def schedule_last_fires(self) -> dict[str, FireRecord]:
        """The latest recorded fire of each schedule that has one, by schedule name.
        Stored rows that do not read as a fire record (written by hand) are left out."""

    @abc.abstractmethod
    def schedule_prune(self, *, older_than: float) -> int:
        """Delete fire records recorded more than ``older_than`` seconds ago on the
        store's clock, except the latest fire of each schedule; return how many went.

        Judged by when a record was written, not by its fire time: a fire caught up on
        long after it was due keeps its record while other schedulers may still be
        about to fire it."""

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
