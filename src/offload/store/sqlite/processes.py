"""The SQLite store's process table (heartbeats, stops, the listing with each row's
status, pruning) and its named locks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from offload.store import rules
from offload.store.base import Store
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
            now = time.time()
            c.executemany(
                Q.HEARTBEAT,
                [
                    (p.id, p.kind, p.host, p.pid, p.parent_id, p.queues, p.started_at or now,
                     now, p.served, p.failed, p.current_job, p.rss, max(p.peak_rss, p.rss),
                     p.info)
                    for p in processes
                ],
            )  # fmt: skip

        self.db.write(beat)

    def process_stop(self, process_ids: Sequence[str]) -> None:
        if not process_ids:
            return

        def stop(c: sqlite3.Connection) -> None:
            now = time.time()
            c.executemany(Q.STOP_PROCESS, [(now, p) for p in process_ids])

        self.db.write(stop)

    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        now = time.time()
        rows = [ProcessInfo(*r) for r in self.db.read(Q.LIST_PROCESSES)]
        return rules.process_statuses(rows, now, gone_after)

    def process_prune(self, *, older_than: float) -> int:
        def prune(c: sqlite3.Connection) -> int:
            return c.execute(Q.PRUNE_PROCESSES, (time.time() - older_than,)).rowcount

        return self.db.write(prune)

    # -- locks ---------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        def take(c: sqlite3.Connection) -> bool:
            now = time.time()
            c.execute(Q.TAKE_LOCK, (name, owner, now + ttl, now))
            return bool(c.execute(Q.CHANGES).fetchone()[0])

        return self.db.write(take)

    def lock_release(self, name: str, owner: str) -> None:
        self.db.write(lambda c: c.execute(Q.RELEASE_LOCK, (name, owner)))
