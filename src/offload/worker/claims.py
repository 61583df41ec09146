"""The claimer: claims jobs for the pool's idle children, writing everything pending in the
same transaction, and listens for the store's wake-ups.

One store round trip a turn: what the children reported and the next claim go out
together (:meth:`Recorder.flush_and_claim`, one ``job_write_and_claim`` commit); with no
claim due, the pending writes alone. It claims only as many jobs as there are idle
children (times the batch size): no prefetch. It claims at once when there may be work
(a child freed up, a job was handed back or rescued, a wake-up came), else at the next
``poll_interval``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from offload import logs
from offload.store.base import Waiter
from offload.types import ClaimRequest
from offload.worker.component import Component, Shared
from offload.worker.pool import Pool


class Claimer(Component):
    """Claims for ``pool`` and sends the shared pending writes. See the module docstring."""

    def __init__(self, shared: Shared, pool: Pool) -> None:
        self._shared = shared
        self._settings = shared.settings
        self._config = shared.config
        self._guard = shared.guard
        self._recorder = shared.recorder
        self._pool = pool
        self._tasks = sorted(shared.app.tasks)
        self._waiter: Waiter | None = None
        #: The waiter's descriptor this turn (None: it has none; see before_wait).
        self._waiter_fd: int | None = None
        self._stopping = False
        self._claimed = 0
        #: The last claim found fewer jobs than it asked for, and nothing changed since.
        self._idle = False
        self._woken = True
        self._next_poll = 0.0

    @property
    def found_nothing(self) -> bool:
        """The last claim came back short and no work became due since (a drain stops)."""
        return self._idle

    @property
    def spent(self) -> bool:
        """``max_jobs`` jobs were claimed."""
        limit = self._config.max_jobs
        return limit is not None and self._claimed >= limit

    def expect_work(self) -> None:
        """Work may be there now (a child freed up, jobs became due): claim without
        waiting for a poll or a wake-up."""
        self._idle = False

    # -- the component ---------------------------------------------------------------------
    def start(self) -> None:
        shared = self._shared
        self._waiter = self._guard.call("waiter", lambda: shared.store.waiter(shared.config.queues))

    def waitables(self) -> Iterable[Any]:
        waiter = self._waiter
        self._waiter_fd = waiter.selectable() if waiter is not None else None
        return () if self._waiter_fd is None else (self._waiter_fd,)

    def before_wait(self, timeout: float) -> float:
        """Use a waiter that cannot join the wait (PostgreSQL's LISTEN connection).

        With no job running, nothing but the waiter can need attention soon, so block in
        it (a dying idle child or a signal is handled at most ``timeout`` later). With
        jobs running, only peek at it, so children are never kept waiting.
        """
        waiter = self._waiter
        if waiter is None or self._waiter_fd is not None:
            return timeout
        if not self._pool.busy():
            self._woken = waiter.wait(timeout) or self._woken
            return 0.0
        if self._pool.has_idle():
            self._woken = waiter.wait(0.001) or self._woken
        return timeout

    def next_at(self) -> float | None:
        """The next flush worth trying, and the next claim: at once when there may be work,
        else at the next poll, never while the store backs off; none while no child is
        idle or claiming is over."""
        flush_at = self._recorder.next_flush()
        if not (self._may_claim() and self._pool.has_idle()):
            return flush_at
        eager = self._woken or not self._idle
        claim_at = max(time.monotonic() if eager else self._next_poll, self._guard.retry_at)
        return claim_at if flush_at is None else min(flush_at, claim_at)

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        self._note_wakeups(ready)
        # Outcomes and the next claim go out in one transaction (one commit); with no
        # claim due, pending writes alone.
        if not self._claim(now):
            self._recorder.flush()

    def stop(self, fast: bool) -> None:
        self._stopping = True

    def fds(self) -> list[int]:
        fd = self._waiter.selectable() if self._waiter is not None else None
        return [] if fd is None else [fd]

    def close(self) -> None:
        """Write what is pending (retrying for about a lease), close the waiter."""
        self._final_flush()
        if self._waiter is not None:
            self._waiter.close()

    # -- claiming --------------------------------------------------------------------------
    def _may_claim(self) -> bool:
        return not self._stopping and not self.spent

    def _note_wakeups(self, ready: Sequence[Any]) -> None:
        waiter = self._waiter
        if waiter is not None and self._waiter_fd is not None and self._waiter_fd in ready:
            self._woken = waiter.wait(0) or self._woken

    def _claim(self, now: float) -> bool:
        """Claim for the idle children, writing what is pending in the same transaction;
        False if no claim was due (or the store is backing off)."""
        if not self._may_claim() or not self._guard.ready():
            return False
        free = self._pool.idle_slots()
        if not free or (self._idle and not self._woken and now < self._next_poll):
            return False
        limit = len(free) * self._pool.batch_size()
        if self._config.max_jobs is not None:
            limit = min(limit, self._config.max_jobs - self._claimed)
        self._woken = False
        self._next_poll = now + self._settings.poll_interval
        request = ClaimRequest(
            worker_id=self._shared.worker_id, queues=self._config.queues, tasks=self._tasks,
            limit=limit, lease=self._settings.lease,
        )  # fmt: skip
        jobs = self._recorder.flush_and_claim(request)
        if jobs is None:
            return True
        self._idle = len(jobs) < limit
        self._claimed += len(jobs)
        self._pool.deal(free, jobs)
        return True

    def _final_flush(self) -> None:
        # Outcomes must land while their leases are valid: retry for about one lease. Past
        # that another worker rescues the job, so nothing is lost by giving up.
        deadline = time.monotonic() + self._settings.lease
        while not self._recorder.flush(force=True):
            if time.monotonic() >= deadline:
                logs.log(
                    "worker.unrecorded", "error", worker=self._shared.worker_id,
                    outcomes=len(self._recorder.pending.outcomes),
                    reason="store unavailable; the jobs run again after their lease expires",
                )  # fmt: skip
                return
            time.sleep(max(0.05, min(1.0, self._guard.retry_at - time.monotonic())))
