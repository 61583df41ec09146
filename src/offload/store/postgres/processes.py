"""The PostgreSQL store's process table (heartbeats, stops, the listing with each row's
status judged on the server's clock, pruning, the task names each worker registers) and
its named locks."""

from __future__ import annotations

from collections.abc import Sequence

from offload.store import rules
from offload.store.postgres import queries as Q
from offload.store.postgres.core import PostgresCore
from offload.store.postgres.pool import Conn
from offload.types import ProcessInfo


class ProcessesMixin(PostgresCore):
    """Process rows and named locks (a part of :class:`PostgresStore`)."""

    # -- processes -----------------------------------------------------------------------
    def process_heartbeat(self, processes: Sequence[ProcessInfo]) -> None:
        if not processes:
            return
        query = self.q(Q.HEARTBEAT)
        rows = [
            (p.id, p.kind, p.host, p.pid, p.parent_id, p.queues, p.started_at or None,
             p.served, p.failed, p.current_job, p.rss, max(p.peak_rss, p.rss), p.info)
            for p in processes
        ]  # fmt: skip

        def beat(c: Conn) -> None:
            with c.cursor() as cur:
                cur.executemany(query, rows)

        self._run(beat)

    def process_stop(self, process_ids: Sequence[str]) -> None:
        if not process_ids:
            return
        query = self.q(Q.STOP_PROCESSES)
        self._run(lambda c: c.execute(query, (list(process_ids),)))

    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        rows = self._read(Q.LIST_PROCESSES)
        if not rows:
            return []
        now = float(rows[0][-1])  # the server's clock
        return rules.process_statuses([ProcessInfo(*r[:-1]) for r in rows], now, gone_after)

    def process_prune(self, *, older_than: float) -> int:
        query = self.q(Q.PRUNE_PROCESSES)
        return self._run(lambda c: c.execute(query, (float(older_than),)).rowcount)

    def process_tasks_publish(self, process_id: str, tasks: Sequence[str]) -> bool:
        query, text = self.q(Q.PUBLISH_TASKS), rules.tasks_json(tasks)
        return bool(self._run(lambda c: c.execute(query, (text, process_id)).rowcount))

    def process_tasks_live(self, *, gone_after: float) -> set[str]:
        rows = self._read(Q.PROCESS_TASKS)
        if not rows:
            return set()
        now = float(rows[0][-1])  # the server's clock
        processes = [ProcessInfo(*r[:-2]) for r in rows]
        tasks = {r[0]: r[-2] for r in rows}
        return rules.live_tasks(rules.process_statuses(processes, now, gone_after), tasks)

    def job_tasks_unserved(self, *, gone_after: float) -> dict[str, int]:
        live = self.process_tasks_live(gone_after=gone_after)
        return rules.unserved_tasks(self._read(Q.WAITING_BY_TASK), live)

    # -- locks ---------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        query = self.q(Q.TAKE_LOCK)
        rows = self._run(lambda c: c.execute(query, (name, owner, float(ttl))).fetchall())
        return bool(rows)

    def lock_release(self, name: str, owner: str) -> None:
        query = self.q(Q.RELEASE_LOCK)
        self._run(lambda c: c.execute(query, (name, owner)))
