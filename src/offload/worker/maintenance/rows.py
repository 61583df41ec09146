"""Process-table rows: the supervisor's own row and one per child (``offload ps``), and
the last row with the final counts when the worker exits."""

from __future__ import annotations

import json
import os
import time

from offload.types import ProcessInfo
from offload.worker.component import Shared
from offload.worker.limits import peak_rss_self, rss_of
from offload.worker.maintenance import Duty
from offload.worker.pool import Pool


class ProcessRows(Duty):
    """Writes the rows every heartbeat, and at once after a child started."""

    def __init__(self, shared: Shared, pool: Pool, host: str) -> None:
        self._shared = shared
        self._pool = pool
        self._host = host
        self._started = time.time()
        #: ``pool.started`` when the rows were last written.
        self._written = 0

    def run(self) -> bool:
        self._write()
        return self._shared.guard.ready()  # the call returns None either way; ready() tells

    def between(self) -> None:
        # Show a new child in the process table without delay.
        if self._pool.started != self._written and self._shared.guard.ready():
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
        self._written = self._pool.started
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
                queues=queues, started_at=self._started, served=stats.run,
                failed=stats.failed, rss=rss, peak_rss=max(rss, peak_rss_self()),
                info=json.dumps(
                    {"concurrency": config.concurrency, "heartbeat": shared.settings.heartbeat}
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
                    served=slot.served, failed=slot.failed,
                    current_job=slot.job.id if slot.job else None, rss=child_rss,
                    peak_rss=child.peak_rss,
                )
            )  # fmt: skip
        return rows
