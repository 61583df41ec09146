"""The PostgreSQL store's schedules: fire records inserted with their jobs in one
transaction, the latest fire of each schedule, and pruning.

The fire table's primary key decides which scheduler records a fire: an insert that
meets a row another transaction inserted and has not committed yet waits for it, then
does nothing (``ON CONFLICT DO NOTHING``), so a fire becomes one job however many
machines fire it at the same moment.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.rows import tuple_row

from offload.store import rules
from offload.store.postgres import queries as Q
from offload.store.postgres.jobs import JobsMixin
from offload.store.postgres.listen import payload
from offload.store.postgres.pool import Conn
from offload.types import FireRecord, NewJob, ScheduleFire


class SchedulesMixin(JobsMixin):
    """Record fires of periodic schedules (a part of :class:`PostgresStore`)."""

    def schedule_fire(self, fires: Sequence[ScheduleFire]) -> list[str | None]:
        rules.check_fires(fires)
        if not fires:
            return []
        firsts = [f for f, first in zip(fires, rules.unique_fires(fires), strict=True) if first]

        def record(c: Conn) -> dict[tuple[str, int], str]:
            cur = c.cursor(row_factory=tuple_row)
            rows = cur.execute(
                self.q(Q.INSERT_FIRES),
                [
                    [f.schedule for f in firsts],
                    [f.fire_at for f in firsts],
                    [f.job.id for f in firsts],
                ],
            ).fetchall()
            recorded = {(str(r[0]), int(r[1])) for r in rows}
            chosen = [f for f in firsts if (f.schedule, f.fire_at) in recorded]
            if not chosen:
                return {}
            jobs: list[NewJob] = [f.job for f in chosen]
            ids = self._insert(c, jobs, payload(j.queue for j in jobs))
            out: dict[tuple[str, int], str] = {}
            for f, job_id in zip(chosen, ids, strict=True):
                if job_id != f.job.id:  # a unique key held by an unfinished job
                    cur.execute(self.q(Q.SET_FIRE_JOB), (job_id, f.schedule, f.fire_at))
                out[f.schedule, f.fire_at] = job_id
            return out

        done = self._run(record)
        out: list[str | None] = []
        for f in fires:
            job_id = done.pop((f.schedule, f.fire_at), None)  # once: later twins get None
            out.append(job_id)
        return out

    def schedule_last_fires(self) -> dict[str, FireRecord]:
        return rules.last_fires(self._read(Q.LAST_FIRES))

    def schedule_prune(self, *, older_than: float) -> int:
        query = self.q(Q.PRUNE_FIRES)
        return self._run(lambda c: c.execute(query, (float(older_than),)).rowcount)
