"""The SQLite store's process table (heartbeats, stops, the listing with each row's
status, pruning, the task names each worker registers) and its named locks.

Each heartbeat also stamps the row with the host's boot id and the writer's monotonic
clock, so whether a process is gone is judged on a clock that wall-clock steps do not move
(see ``clock.py``); a row of an earlier boot is gone."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from offload.store import rules
from offload.store.base import Store
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.connection import Database
from offload.types import ProcessInfo


class ProcessesMixin(Store):
    """Process rows and named locks (a part of :class:`SQLiteStore`)."""

    db: Database

    # -- processes -----------------------------------------------------------------------
    def process_heartbeat(self, processes: Sequence[ProcessInfo]) -> None:
        if not processes:
            return

        def beat(c: sqlite3.Connection) -> None:
            now, boot, mono = clock.wall(), clock.boot_id(), clock.mono()
            c.executemany(
                Q.HEARTBEAT,
                [
                    (p.id, p.kind, p.host, p.pid, p.parent_id, p.queues, p.started_at or now,
                     now, p.served, p.failed, p.current_job, p.rss, max(p.peak_rss, p.rss),
                     p.info, boot, mono)
                    for p in processes
                ],
            )  # fmt: skip

        self.db.write(beat)

    def process_stop(self, process_ids: Sequence[str]) -> None:
        if not process_ids:
            return

        def stop(c: sqlite3.Connection) -> None:
            now = clock.wall()
            c.executemany(Q.STOP_PROCESS, [(now, p) for p in process_ids])

        self.db.write(stop)

    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        return self._processes(gone_after)[0]

    def _processes(self, gone_after: float) -> tuple[list[ProcessInfo], dict[str, Any]]:
        """The rows with their statuses, and each row's stored task names by id."""
        now, boot, mono = clock.wall(), clock.boot_id(), clock.mono()
        rows, silent, tasks = [], {}, {}
        for r in self.db.read(Q.LIST_PROCESSES):
            p = ProcessInfo(*r[:-3])
            quiet = _silent_for(r[-3], r[-2], boot, mono)
            if quiet is not None:
                silent[p.id] = quiet
            tasks[p.id] = r[-1]
            rows.append(p)
        return rules.process_statuses(rows, now, gone_after, silent), tasks

    def process_prune(self, *, older_than: float) -> int:
        def prune(c: sqlite3.Connection) -> int:
            return c.execute(Q.PRUNE_PROCESSES, (clock.wall() - older_than,)).rowcount

        return self.db.write(prune)

    def process_tasks_publish(self, process_id: str, tasks: Sequence[str]) -> bool:
        text = rules.tasks_json(tasks)

        def publish(c: sqlite3.Connection) -> bool:
            return bool(c.execute(Q.PUBLISH_TASKS, (text, process_id)).rowcount)

        return self.db.write(publish)

    def process_tasks_live(self, *, gone_after: float) -> set[str]:
        return rules.live_tasks(*self._processes(gone_after))

    def job_tasks_unserved(self, *, gone_after: float) -> dict[str, int]:
        live = self.process_tasks_live(gone_after=gone_after)
        return rules.unserved_tasks(self.db.read(Q.WAITING_BY_TASK), live)

    # -- locks ---------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        def take(c: sqlite3.Connection) -> bool:
            now = clock.wall()
            c.execute(Q.TAKE_LOCK, (name, owner, now + ttl, now))
            return bool(c.execute(Q.CHANGES).fetchone()[0])

        return self.db.write(take)

    def lock_release(self, name: str, owner: str) -> None:
        self.db.write(lambda c: c.execute(Q.RELEASE_LOCK, (name, owner)))


def _silent_for(row_boot: Any, beat_mono: Any, boot: str | None, mono: float) -> float | None:
    """Seconds since a row's last heartbeat by the host's monotonic clock: infinite for a
    row of an earlier boot, None when the clock cannot tell (no boot id on either side,
    or values not of the stored kind: then the wall clock judges)."""
    if boot is None or not isinstance(row_boot, str) or not row_boot:
        return None
    if row_boot != boot:
        return math.inf
    if not isinstance(beat_mono, int | float) or isinstance(beat_mono, bool):
        return None
    if not math.isfinite(beat_mono):
        return None
    return max(0.0, mono - float(beat_mono))
