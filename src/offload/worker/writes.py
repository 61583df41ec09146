"""What a supervisor writes to the store, and how it survives the store being down.

Reports from children (progress, log lines, saved values, outcomes) wait in
:class:`PendingWrites` and go out together in one ``job_write`` transaction. When a write
fails, nothing is dropped: the batch is merged back and retried after a jittered backoff,
while the supervisor's children keep running.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from offload import logs
from offload.store.base import Store
from offload.types import ClaimedJob, ClaimRequest, MessageAdd, Outcome, ProgressUpdate, SaveValue
from offload.worker.config import Stats

T = TypeVar("T")

#: Progress alone is written at most this often; outcomes are written at once.
PROGRESS_FLUSH = 0.1
BACKOFF_MAX = 30.0


class StoreGuard:
    """Runs store calls; a failure is logged and starts a jittered backoff.

    The store may be away for minutes (a PostgreSQL failover, a SQLite file locked by a
    backup): callers check :meth:`ready` before optional work and carry on without it.
    """

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.retry_at = 0.0
        self._failures = 0

    def ready(self) -> bool:
        """False while backing off after a failure."""
        return time.monotonic() >= self.retry_at

    def call(self, what: str, fn: Callable[[], T]) -> T | None:
        """``fn()``, or None if it raised (logged as ``store.error`` with ``op=what``)."""
        try:
            value = fn()
        except Exception as exc:
            self._failures += 1
            delay = min(BACKOFF_MAX, 0.2 * 2 ** min(self._failures, 8))
            delay *= 0.5 + random.random()
            self.retry_at = time.monotonic() + delay
            logs.log(
                "store.error", "warning", worker=self.worker_id, op=what, error=repr(exc),
                retry_in=round(delay, 2),
            )  # fmt: skip
            return None
        self._failures = 0
        self.retry_at = 0.0
        return value


@dataclass
class PendingWrites:
    """Writes waiting for the next ``job_write`` transaction."""

    outcomes: list[Outcome] = field(default_factory=list)
    #: Coalesced: only the latest progress of each run is written.
    progress: dict[tuple[str, int], ProgressUpdate] = field(default_factory=dict)
    messages: list[MessageAdd] = field(default_factory=list)
    saves: list[SaveValue] = field(default_factory=list)
    #: Process-table rows to mark stopped (children that exited).
    stopped: list[str] = field(default_factory=list)
    #: Where else an outcome is counted once written, by run (a child's own counts).
    tallies: dict[tuple[str, int], Stats] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.progress or self.messages or self.saves or self.stopped)

    @property
    def urgent(self) -> bool:
        """Outcomes and exits are written at once; progress alone can wait a moment."""
        return bool(self.outcomes or self.stopped)

    def merge(self, newer: PendingWrites) -> PendingWrites:
        """These writes followed by ``newer`` (a failed batch goes back in front)."""
        return PendingWrites(
            outcomes=self.outcomes + newer.outcomes,
            progress={**self.progress, **newer.progress},
            messages=self.messages + newer.messages,
            saves=self.saves + newer.saves,
            stopped=self.stopped + newer.stopped,
            tallies={**self.tallies, **newer.tallies},
        )


class Recorder:
    """Holds pending writes and flushes them in one transaction.

    It is where outcomes are counted: the store says which it accepted, so ``stats``
    (and a run's tally, see :attr:`PendingWrites.tallies`) count a refused outcome as
    refused, never as succeeded or failed.
    """

    def __init__(self, store: Callable[[], Store], guard: StoreGuard, stats: Stats) -> None:
        self._store = store
        self._guard = guard
        self._stats = stats
        self.pending = PendingWrites()
        self.last_flush = 0.0

    def next_flush(self) -> float | None:
        """The monotonic time of the next flush worth trying, or None if nothing waits."""
        if not self.pending:
            return None
        return max(self._guard.retry_at, self.last_flush + PROGRESS_FLUSH)

    def flush(self, force: bool = False) -> bool:
        """Write everything pending; False if something is left for a retry."""
        batch = self.pending
        if not batch:
            return True
        now = time.monotonic()
        if not force and not self._guard.ready():
            return False
        if not force and not batch.urgent and now - self.last_flush < PROGRESS_FLUSH:
            return False
        self.last_flush = now
        self.pending = PendingWrites()
        accepted = self._guard.call("record", lambda: self._write(batch))
        if accepted is None:
            self.pending = batch.merge(self.pending)
            return False
        self._report(batch, accepted)
        return True

    def flush_and_claim(self, claim: ClaimRequest) -> list[ClaimedJob] | None:
        """Write everything pending and claim, in one transaction; None if that failed
        (nothing was written or claimed: the writes stay pending for a retry)."""
        batch = self.pending
        self.pending = PendingWrites()
        self.last_flush = time.monotonic()

        def write() -> tuple[list[bool], list[ClaimedJob]]:
            return self._store().job_write_and_claim(
                claim=claim, outcomes=batch.outcomes, progress=list(batch.progress.values()),
                messages=batch.messages, saves=batch.saves,
            )  # fmt: skip

        result = self._guard.call("record_claim", write)
        if result is None:
            self.pending = batch.merge(self.pending)
            return None
        accepted, jobs = result
        self._report(batch, accepted)
        if batch.stopped:
            stopped = batch.stopped
            done = self._guard.call(
                "process_stop", lambda: self._store().process_stop(stopped) or True
            )
            if done is None:
                self.pending.stopped = stopped + self.pending.stopped
        return jobs

    def _report(self, batch: PendingWrites, accepted: list[bool]) -> None:
        stats, tallies = self._stats, batch.tallies
        for outcome, ok in zip(batch.outcomes, accepted, strict=False):
            stats.note(outcome, ok)
            if tallies:
                tally = tallies.get((outcome.job_id, outcome.attempt))
                if tally is not None:
                    tally.note(outcome, ok)
            if not ok:
                logs.log(
                    "job.outcome_refused", "warning", job=outcome.job_id,
                    attempt=outcome.attempt, state=outcome.state.value,
                    reason="the lease was lost (the job was rescued or cancelled)",
                )  # fmt: skip

    def _write(self, batch: PendingWrites) -> list[bool]:
        store = self._store()
        accepted = store.job_write(
            outcomes=batch.outcomes, progress=list(batch.progress.values()),
            messages=batch.messages, saves=batch.saves,
        )  # fmt: skip
        store.process_stop(batch.stopped)
        return accepted
