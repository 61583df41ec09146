"""The SQLite store's groups: create, add members, seal, read. Counters are kept by the
statements that move members (``jobs.count_member``), completion by the trigger of
migration 0005 on the group's row, inside whatever write makes a member final."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from offload.store import group_rules
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.counts import Tally
from offload.store.sqlite.jobs import JobsMixin, queue_of_each
from offload.types import GroupRow, GroupState, JobState, NewGroup, NewJob


class GroupsMixin(JobsMixin):
    """Groups of jobs (a part of :class:`SQLiteStore`; members are jobs, inserted with
    the same free-space check)."""

    def group_create(self, group: NewGroup) -> GroupRow:
        def create(c: sqlite3.Connection) -> GroupRow:
            started, stopped = True, False
            if group.after is not None:
                previous = c.execute(Q.GROUP_PREVIOUS, (group.after,)).fetchone()
                if previous is None:
                    raise group_rules.group_missing(group.after, " (named as the stage before)")
                started, stopped = bool(previous[0]), bool(previous[0] and previous[1])
            cb = group.callback
            c.execute(
                Q.INSERT_GROUP,
                {"id": group.id, "name": group.name, "now": clock.wall(),
                 "started": int(started), "after": group.after,
                 "stop_on_failure": int(group.stop_on_failure),
                 "callback_id": group.callback_id if cb is not None else None,
                 "task": cb.task if cb else None, "queue": cb.queue if cb else None,
                 "priority": cb.priority if cb else None,
                 "max_attempts": cb.max_attempts if cb else None,
                 "timeout": cb.timeout if cb else None, "options": cb.options if cb else None},
            )  # fmt: skip
            if stopped:
                c.execute(Q.STOP_GROUP, (group.id,))
            return self._group(c, group.id)

        return self.db.write(create)

    def group_add(self, group_id: str, jobs: Sequence[NewJob]) -> list[str]:
        group_rules.check_members(group_id, jobs)
        if not jobs:
            self._group_open(group_id)
            return []
        self._check_free_space()

        def add(c: sqlite3.Connection) -> list[str]:
            row = self._group(c, group_id)
            if row.completed_at is not None:
                raise group_rules.group_closed(row)
            state = group_rules.member_state(row.state is not GroupState.WAITING)
            now = clock.wall()
            rows = [
                (j.id, j.task, j.queue, state, j.priority, j.args, j.kwargs, j.max_attempts,
                 now, j.run_at if j.run_at is not None else now + j.delay, j.timeout,
                 j.options, group_id, j.limit_key, j.limit_max)
                for j in jobs
            ]  # fmt: skip
            if state == JobState.WAITING.value:  # counted (queued ones are not kept)
                stored = set(queue_of_each(c, [j.id for j in jobs]))  # skipped: added before
                tally = Tally()
                for j in jobs:
                    if j.id not in stored:
                        stored.add(j.id)
                        tally.add(j.queue, state)
                tally.flush(c)
            inserted = c.executemany(Q.INSERT_MEMBER, rows).rowcount
            c.execute(Q.GROW_GROUP, (inserted, group_id))
            return [j.id for j in jobs]

        ids = self.db.write(add)
        self._waker.wake(j.queue for j in jobs)
        return ids

    def group_seal(self, group_id: str) -> GroupRow:
        def seal(c: sqlite3.Connection) -> GroupRow:
            self._group(c, group_id)
            c.execute(Q.SEAL_GROUP, (group_id,))
            return self._group(c, group_id)

        row = self.db.write(seal)
        if row.completed_at is not None:
            self._waker.wake(())
        return row

    def group_get(self, group_id: str) -> GroupRow | None:
        rows = self.db.read(Q.GET_GROUP, (group_id,))
        return group_rules.group_row(rows[0], self.path) if rows else None

    def group_list(self, *, limit: int = 50, before_id: str | None = None) -> list[GroupRow]:
        if before_id is None:
            rows = self.db.read(Q.LIST_GROUPS, (limit,))
        else:
            rows = self.db.read(Q.LIST_GROUPS_BEFORE, (before_id, limit))
        return [group_rules.group_row(r, self.path) for r in rows]

    def group_of_job(self, job_id: str) -> str | None:
        rows = self.db.read(Q.GROUP_OF_JOB, (job_id,))
        value = rows[0][0] if rows else None
        return value if isinstance(value, str) else None

    def _group_open(self, group_id: str) -> None:
        row = self.group_get(group_id)
        if row is None:
            raise group_rules.group_missing(group_id)
        if row.completed_at is not None:
            raise group_rules.group_closed(row)

    def _group(self, c: sqlite3.Connection, group_id: str) -> GroupRow:
        row = c.execute(Q.GET_GROUP, (group_id,)).fetchone()
        if row is None:
            raise group_rules.group_missing(group_id)
        return group_rules.group_row(row, self.path)
