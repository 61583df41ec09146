"""Pruning: delete finished jobs past their retention (see :mod:`offload.retention`), a
small batch at a time, on one worker of the store at a time.

Every ``prune_interval`` seconds the worker takes (or renews) the store lock
:data:`LOCK`; if another worker holds it, that one prunes and this one waits for the next
interval. The holder deletes one batch of at most ``prune_batch`` jobs, with their events
and messages, in one short transaction. While batches come back full, the next follows
after a pause of nine times the batch's duration (see :func:`~offload.retention.pause_after`),
so catching up on a backlog takes at most a tenth of the store's time, one batch per turn
of the loop at most. Each batch that deleted something logs ``worker.pruned``. The lock
lapses ``3 * prune_interval`` seconds (at least a lease) after a holder died, and is
released when it stops.

A drain prunes too: one batch at its first heartbeat (and more while it runs), so a store
served by cron drains alone is kept small as well. ``prune_interval=None`` turns it off.
"""

from __future__ import annotations

import time
from typing import Any

from offload import logs
from offload.retention import PruneResult, RetentionPolicy, pause_after
from offload.worker.component import Shared
from offload.worker.maintenance import Duty

#: The store lock held by the worker that prunes.
LOCK = "prune"


class Pruning(Duty):
    """Prunes a batch when due (see the module docstring); the only duty with its own
    interval, so it runs in :meth:`between` as well as at heartbeats."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        settings = shared.settings
        self._interval = settings.prune_interval
        self._batch = settings.prune_batch
        self._policy = RetentionPolicy.from_settings(settings)
        self._ttl = max(3 * (self._interval or 0.0), settings.lease)
        #: Monotonic time of the next batch: at the first heartbeat.
        self._next = 0.0
        #: Monotonic time until which the lock surely holds (renewed well before).
        self._held_until = 0.0

    def run(self) -> bool:
        self._prune_if_due()
        return True  # a failed prune is logged, and never ends the round

    def between(self) -> None:
        self._prune_if_due()

    def next_at(self) -> float | None:
        if self._interval is None:
            return None
        return max(self._next, self._shared.guard.retry_at)

    def close(self) -> None:
        shared = self._shared
        if self._held_until:
            shared.guard.call(
                "lock_release", lambda: shared.store.lock_release(LOCK, shared.worker_id)
            )
            self._held_until = 0.0

    def _prune_if_due(self) -> None:
        interval = self._interval
        now = time.monotonic()
        if interval is None or now < self._next or not self._shared.guard.ready():
            return
        # Acted on whatever happens below (the rule for next_at in component.py).
        self._next = now + interval
        if not self._hold(now):
            return
        shared = self._shared
        policy, batch = self._policy, self._batch
        began = time.monotonic()
        result = shared.guard.call(
            "prune", lambda: shared.store.job_prune_expired(policy, limit=batch)
        )
        elapsed = time.monotonic() - began
        if result is None:
            return
        if result.total:
            self._log(result, elapsed)
        if result.full:
            self._next = time.monotonic() + pause_after(elapsed)

    def _hold(self, now: float) -> bool:
        """Whether this worker holds the prune lock (taken or renewed when a third of its
        time has gone)."""
        if now < self._held_until - 2 * self._ttl / 3:
            return True
        shared = self._shared
        held = shared.guard.call(
            "lock", lambda: shared.store.lock_acquire(LOCK, shared.worker_id, self._ttl)
        )
        # Counted from before the call: the lock's own clock started no earlier.
        self._held_until = now + self._ttl if held else 0.0
        return bool(held)

    def _log(self, result: PruneResult, elapsed: float) -> None:
        fields: dict[str, Any] = {"worker": self._shared.worker_id, "jobs": result.total}
        fields.update(result.counts())
        fields.update(events=result.events, messages=result.messages, more=result.full)
        logs.log("worker.pruned", **fields, ms=round(elapsed * 1000, 1))
