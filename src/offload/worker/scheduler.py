"""The scheduler: a supervisor component that turns due fires of the app's periodic
schedules into jobs.

Every supervisor (a worker pool or a drain) whose app declares schedules runs one; none is
elected. Each turn with fires due, it sends them all in one ``schedule_fire``
transaction, which records each ``(schedule, fire time)`` once in the store and inserts
its job in the same commit: however many supervisors on however many machines fire the
same schedule, each fire becomes exactly one job, and a supervisor killed at any
instruction leaves either the fire and its job or neither (another supervisor, or this
one restarted, then fires it).

Times: fire times are whole epoch seconds on the store's clock (the database server for
PostgreSQL, the host for SQLite), read as the local wall clock plus an offset measured
with ``store.now()`` at start and every :data:`CLOCK_EVERY` seconds. Which fires are due
is decided by :func:`offload.scheduling.plan.plan` from each schedule's cursor, loaded at
start from the store's latest fire records (so a supervisor started after downtime knows
what was missed). When the store fails, the fires stay due and are retried after the
guard's backoff; fires that became more than ``LATE_GRACE`` seconds overdue meanwhile
follow the catch-up policy, with cursors refreshed from the store first.

Idle cost: one heap look per turn; nothing is stepped until a fire is due. Fire records
written more than :data:`FIRE_KEEP` ago are pruned every :data:`PRUNE_EVERY` seconds
(the latest of each schedule is kept: it is where catching up starts), unless
``prune_interval`` is None.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from typing import Any

from offload import logs
from offload.scheduling.periodic import Periodic
from offload.scheduling.plan import late_from, missed_any, plan
from offload.types import FireRecord, ScheduleFire
from offload.worker.component import Component, Shared

#: Seconds between two readings of the store's clock offset.
CLOCK_EVERY = 60.0
#: Seconds a fire record is kept after it was written (the latest of each schedule is
#: kept for ever). A scheduler's plan is never older than its last look at the store's
#: latest fires (taken again before any catch-up), so no kept-long-enough record is
#: ever needed again.
FIRE_KEEP = 7 * 86400.0
#: Seconds between two prunes of fire records.
PRUNE_EVERY = 3600.0


class Scheduler(Component):
    """Fires the app's schedules (see the module docstring); ``on_fired`` is called when
    a turn recorded jobs, so the claimer looks for them at once."""

    def __init__(self, shared: Shared, on_fired: Callable[[], None]) -> None:
        self._shared = shared
        self._on_fired = on_fired
        self._schedules: dict[str, Periodic] = (
            dict(shared.app.schedules) if shared.config.schedules else {}
        )
        #: The latest fire time handled, by schedule (loaded from the store at start).
        self._cursor: dict[str, int] = {}
        #: (next fire time, schedule name): the earliest first.
        self._heap: list[tuple[int, str]] = []
        self._loaded = False
        #: The store's wall clock (whole seconds) when the cursors were loaded: what fell
        #: due before it was downtime.
        self._started = 0
        self._stopping = False
        #: The store's clock minus the local wall clock, and when to measure it again.
        self._offset = 0.0
        self._next_clock = 0.0
        self._next_prune = 0.0

    # -- the component ---------------------------------------------------------------------
    def next_at(self) -> float | None:
        if not self._schedules or self._stopping:
            return None
        retry = self._shared.guard.retry_at
        if not self._loaded:
            return retry
        moments = [self._next_clock]
        if self._heap:
            moments.append(time.monotonic() + (self._heap[0][0] - self._wall()))
        if self._prunes():
            moments.append(self._next_prune)
        return max(retry, min(moments))

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        if not self._schedules or self._stopping or not self._shared.guard.ready():
            return
        if not self._loaded and not self._load(now):
            return
        if now >= self._next_clock and not self._measure_clock(now):
            return  # the store failed: everything waits for the guard's backoff
        if self._heap and self._heap[0][0] <= self._wall():
            self._fire_due()
        if self._prunes() and now >= self._next_prune and self._shared.guard.ready():
            self._prune(now)

    def stop(self, fast: bool) -> None:
        self._stopping = True  # a stopping worker enqueues nothing new

    # -- start -----------------------------------------------------------------------------
    def _load(self, now: float) -> bool:
        """Cursors from the store's latest fires (a schedule never fired starts now)."""
        if not self._measure_clock(now):
            return False
        last = self._shared.guard.call("schedule_last_fires", self._store_last_fires)
        if last is None:
            return False
        wall = self._started = int(self._wall())
        for name in self._schedules:
            record = last.get(name)
            self._cursor[name] = wall if record is None else record.fire_at
        self._loaded = True
        for name, cursor in self._cursor.items():
            # A cursor far back (downtime) makes the next fire due at once: plan() then
            # decides what catching up means.
            self._push(name, cursor)
        logs.log(
            "scheduler.started", worker=self._shared.worker_id, schedules=len(self._schedules),
            recorded=sum(1 for name in self._schedules if name in last),
        )  # fmt: skip
        return True

    def _push(self, name: str, cursor: int) -> None:
        at = self._schedules[name].spec.next_after(cursor)
        if at is None:
            logs.log(
                "scheduler.finished", "warning", schedule=name,
                reason="its cron expression matches no later time",
            )  # fmt: skip
            return
        heapq.heappush(self._heap, (at, name))

    # -- firing ----------------------------------------------------------------------------
    def _fire_due(self) -> None:
        wall = int(self._wall())
        due: list[tuple[int, str]] = []
        while self._heap and self._heap[0][0] <= wall:
            due.append(heapq.heappop(self._heap))
        names = [name for _, name in due]
        first_late = late_from(wall, self._started)
        missed = any(
            missed_any(self._schedules[n].spec, self._cursor[n], first_late) for n in names
        )
        if missed and not self._refresh_cursors(names):
            self._push_back(due)
            return
        fires: list[ScheduleFire] = []
        for name in names:
            schedule = self._schedules[name]
            times = plan(
                schedule.spec, self._cursor[name], wall, policy=schedule.catch_up,
                limit=schedule.catch_up_limit, late_from=first_late,
            )  # fmt: skip
            fires.extend(ScheduleFire(name, t, schedule.new_job()) for t in times)
        ids = self._send(fires)
        if ids is None:
            self._push_back(due)
            return
        for name in names:
            self._cursor[name] = max(self._cursor[name], wall)
            self._push(name, self._cursor[name])
        self._report(fires, ids)

    def _push_back(self, due: Sequence[tuple[int, str]]) -> None:
        """Still due: retried once the guard's backoff has passed (cursors unchanged)."""
        for item in due:
            heapq.heappush(self._heap, item)

    def _send(self, fires: list[ScheduleFire]) -> list[str | None] | None:
        if not fires:
            return []
        store = self._shared.store
        return self._shared.guard.call("schedule_fire", lambda: store.schedule_fire(fires))

    def _refresh_cursors(self, names: Sequence[str]) -> bool:
        """Cursors moved up to the store's latest fires before catching up: fires another
        scheduler recorded meanwhile are not caught up on twice (their records may have
        been pruned since). False if the store failed (then nothing is fired)."""
        last = self._shared.guard.call("schedule_last_fires", self._store_last_fires)
        if last is None:
            return False
        for name in names:
            record = last.get(name)
            if record is not None and record.fire_at > self._cursor[name]:
                self._cursor[name] = record.fire_at
        return True

    def _report(self, fires: Sequence[ScheduleFire], ids: Sequence[str | None]) -> None:
        recorded = 0
        for f, job_id in zip(fires, ids, strict=True):
            if job_id is None:
                continue
            recorded += 1
            logs.log(
                "schedule.fired", schedule=f.schedule, fire_at=f.fire_at, job=job_id,
                task=f.job.task, worker=self._shared.worker_id,
            )  # fmt: skip
        if recorded:
            self._on_fired()

    # -- the store's clock, pruning --------------------------------------------------------
    def _wall(self) -> float:
        return time.time() + self._offset

    def _measure_clock(self, now: float) -> bool:
        store = self._shared.store
        before = time.time()
        at = self._shared.guard.call("now", store.now)
        if at is None:
            return False
        after = time.time()
        self._offset = at - (before + after) / 2
        self._next_clock = now + CLOCK_EVERY
        return True

    def _store_last_fires(self) -> dict[str, FireRecord]:
        return self._shared.store.schedule_last_fires()

    def _prunes(self) -> bool:
        return self._shared.settings.prune_interval is not None

    def _prune(self, now: float) -> None:
        self._next_prune = now + PRUNE_EVERY
        store = self._shared.store
        deleted = self._shared.guard.call(
            "schedule_prune", lambda: store.schedule_prune(older_than=FIRE_KEEP)
        )
        if deleted:
            logs.log("scheduler.pruned", worker=self._shared.worker_id, fires=deleted)
