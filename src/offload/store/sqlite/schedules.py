"""The SQLite store's schedules: fire records inserted with their jobs in one write
transaction (``BEGIN IMMEDIATE`` serialises every writer of the file, so a fire is
recorded once however many schedulers race for it), the latest fire of each schedule,
and pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from offload.store import rules
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.jobs import JobsMixin, insert_jobs
from offload.types import FireRecord, ScheduleFire


class SchedulesMixin(JobsMixin):
    """Record fires of periodic schedules (a part of :class:`SQLiteStore`; a fire's job
    is inserted as any other, with the same free-space watermark)."""

    def schedule_fire(self, fires: Sequence[ScheduleFire]) -> list[str | None]:
        rules.check_fires(fires)
        if not fires:
            return []
        self._check_free_space()
        first = rules.unique_fires(fires)

        def record(c: sqlite3.Connection) -> list[str | None]:
            now = clock.wall()
            out: list[str | None] = []
            for f, is_first in zip(fires, first, strict=True):
                if not is_first or c.execute(Q.FIRE_RECORDED, (f.schedule, f.fire_at)).fetchone():
                    out.append(None)
                    continue
                (job_id,) = insert_jobs(c, [f.job])
                c.execute(Q.INSERT_FIRE, (f.schedule, f.fire_at, job_id, now))
                out.append(job_id)
            return out

        ids = self.db.write(record)
        queues = [f.job.queue for f, job_id in zip(fires, ids, strict=True) if job_id]
        if queues:
            self._waker.wake(queues)
        return ids

    def schedule_last_fires(self) -> dict[str, FireRecord]:
        return rules.last_fires(self.db.read(Q.LAST_FIRES))

    def schedule_prune(self, *, older_than: float) -> int:
        cutoff = clock.wall() - float(older_than)
        return self.db.write(lambda c: c.execute(Q.PRUNE_FIRES, (cutoff,)).rowcount)
