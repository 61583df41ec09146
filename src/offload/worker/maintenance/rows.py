"""Process-table rows: the supervisor's own row and one per child (``offload ps``), and
the last row with the final counts when the worker exits.

Rows are written every heartbeat, at once after a child started, and soon after what a
child runs changed (a job dispatched or ended): at most every :data:`AFTER_CHANGE`
seconds, so a job of a second shows as a child's current job while it runs, and thousands
of tiny jobs a second cost a few writes a second, not one a job.

SERVED counts the runs whose outcome the store accepted, FAILED those of them that did
not succeed, retried or not (see :class:`~offload.worker.config.Stats`).
"""

from __future__ import annotations

import json
import os
import time

from offload.histogram import INFO_KEY
from offload.types import ProcessInfo
from offload.worker.component import Shared
from offload.worker.limits import peak_rss_self, rss_of
from offload.worker.maintenance import Duty
from offload.worker.pool import Pool

#: Least seconds between two writes prompted by a change of what the children run.
AFTER_CHANGE = 0.2


class ProcessRows(Duty):
    """Writes the rows every heartbeat, at once after a child started, and soon after a
    job was dispatched or ended (see the module docstring)."""

    def __init__(self, shared: Shared, pool: Pool, host: str) -> None:
        self._shared = shared
        self._pool = pool
        self._host = host
        self._started = time.time()
        #: ``pool.started`` and ``pool.changes`` when the rows were last written.
        self._written = (0, 0)
        self._last_write = -AFTER_CHANGE

    def run(self) -> bool:
        self._write()
        return self._shared.guard.ready()  # the call returns None either way; ready() tells

    def next_at(self) -> float | None:
        """When the rows should be written for a change (None: nothing changed since the
        last write); never before the store's backoff ends."""
        pool = self._pool
        started, changes = self._written
        if pool.started != started:
            at = 0.0  # a new child: at once
        elif pool.changes != changes:
            at = self._last_write + AFTER_CHANGE
        else:
            return None
        return max(at, self._shared.guard.retry_at)

    def between(self) -> None:
        at = self.next_at()
        if at is not None and time.monotonic() >= at:
            self._write()

    def close(self) -> None:
        # One last row with the final counts, so a stopped worker in `offload ps --all`
        # shows what it served rather than what it had served at its last heartbeat.
        self._write()
        shared = self._shared
        ids = [shared.worker_id]
        shared.guard.call("process_stop", lambda: shared.store.process_stop(ids))

    def _write(self) -> None:
        rows = self._rows()
        # Acted on even if the write fails: the next heartbeat tries again (see the rule
        # for next_at in component.py).
        self._written = (self._pool.started, self._pool.changes)
        self._last_write = time.monotonic()
        self._shared.guard.call(
            "process_heartbeat", lambda: self._shared.store.process_heartbeat(rows)
        )

    def _rows(self) -> list[ProcessInfo]:
        shared = self._shared
        config, stats = shared.config, shared.stats
        queues = ",".join(config.queues)
        rss = rss_of(os.getpid())
        rows = [
            ProcessInfo(
                id=shared.worker_id, kind=config.kind, host=self._host, pid=os.getpid(),
                queues=queues, started_at=self._started, served=stats.served,
                failed=stats.errors, rss=rss, peak_rss=max(rss, peak_rss_self()),
                info=json.dumps(
                    {"concurrency": config.concurrency, "heartbeat": shared.settings.heartbeat,
                     INFO_KEY: stats.run_seconds.to_info()}
                ),
            )
        ]  # fmt: skip
        for slot in self._pool.live_slots():
            child = slot.child
            child_rss = child.sample_rss()
            rows.append(
                ProcessInfo(
                    id=child.process_id, kind="child", host=self._host, pid=slot.pid,
                    parent_id=shared.worker_id, queues=queues, started_at=child.started_at,
                    served=slot.counts.served, failed=slot.counts.errors,
                    current_job=slot.job.id if slot.job else None, rss=child_rss,
                    peak_rss=child.peak_rss,
                )
            )  # fmt: skip
        return rows
