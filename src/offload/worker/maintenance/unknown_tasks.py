"""Unknown tasks: publish the task names this worker registers, and say which tasks have
jobs waiting that no live worker registers.

A job whose task no running worker knows stays queued (it is never lost: a worker that
knows it may start later), but nothing would ever say so. This duty puts the worker's
task names on its process-table row, asks the store which tasks with queued or scheduled
jobs no live process registers, and logs ``worker.unknown_tasks`` (a warning naming each
task with its number of waiting jobs): at start, whenever that set changes (a line with
``count=0`` once it is empty again), and again every :data:`REPEAT_EVERY` seconds while it
stays non-empty. ``offload jobs show`` says the same of one job.

A change is confirmed by a second look one or two heartbeats later before it is logged, so
a worker starting at the same moment as the one that knows the task (its names not yet
published) causes no line.
"""

from __future__ import annotations

import time

from offload import logs
from offload.store.rules import GONE_AFTER_BEATS
from offload.worker.component import Shared
from offload.worker.maintenance import Duty

#: Seconds between two looks at the waiting jobs.
CHECK_EVERY = 60.0
#: Seconds after which an unchanged, non-empty set is logged again.
REPEAT_EVERY = 600.0
#: Most task names named on one log line (the count of the rest follows).
NAMED_MAX = 20


class UnknownTasks(Duty):
    """Publishes this worker's task names and logs the unknown tasks with waiting jobs."""

    def __init__(
        self,
        shared: Shared,
        *,
        check_every: float = CHECK_EVERY,
        repeat_every: float = REPEAT_EVERY,
    ) -> None:
        self._shared = shared
        self._check_every = check_every
        self._repeat_every = repeat_every
        self._next_check = 0.0
        #: What was last logged (empty before anything was), and when (monotonic).
        self._logged: dict[str, int] = {}
        self._logged_at = 0.0
        #: Names seen by the last look that differ from ``_logged``, awaiting confirmation.
        self._candidate: frozenset[str] | None = None

    def run(self) -> bool:
        now = time.monotonic()
        if now < self._next_check:
            return True
        shared = self._shared
        store = shared.store
        tasks = sorted(shared.app.tasks)
        # Every look, not once: a pruned row comes back with the next heartbeat, without.
        published = shared.guard.call(
            "process_tasks_publish", lambda: store.process_tasks_publish(shared.worker_id, tasks)
        )
        if published is None:
            return False
        if not published:
            # No row yet (its first write failed): our own tasks would look unknown.
            self._next_check = now + shared.settings.heartbeat
            return True
        gone_after = GONE_AFTER_BEATS * shared.settings.heartbeat
        unserved = shared.guard.call(
            "job_tasks_unserved", lambda: store.job_tasks_unserved(gone_after=gone_after)
        )
        if unserved is None:
            return False
        self._next_check = now + self._check_every
        self._consider(unserved, now)
        return True

    def _consider(self, unserved: dict[str, int], now: float) -> None:
        names = frozenset(unserved)
        if names == frozenset(self._logged):
            self._candidate = None
            if names and now - self._logged_at >= self._repeat_every:
                self._log(unserved, now)
            else:
                self._logged = unserved  # the counts move; the names did not
            return
        if self._candidate != names:
            # Seen once: look again soon (other workers starting now publish meanwhile).
            self._candidate = names
            self._next_check = now + 2 * self._shared.settings.heartbeat
            return
        self._candidate = None
        self._log(unserved, now)

    def _log(self, unserved: dict[str, int], now: float) -> None:
        self._logged, self._logged_at = unserved, now
        names = list(unserved)
        named = ",".join(f"{name}={unserved[name]}" for name in names[:NAMED_MAX])
        if len(names) > NAMED_MAX:
            named += f",...{len(names) - NAMED_MAX} more"
        if not names:
            logs.log(
                "worker.unknown_tasks", worker=self._shared.worker_id, count=0,
                reason="every task with waiting jobs is registered by a live worker",
            )  # fmt: skip
            return
        logs.log(
            "worker.unknown_tasks", "warning", worker=self._shared.worker_id,
            count=len(names), jobs=sum(unserved.values()), tasks=named,
            reason="jobs of these tasks wait, but no live worker registers them: start a "
            "worker whose app registers them, or check the task names",
        )  # fmt: skip
