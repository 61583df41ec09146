"""The PostgreSQL store's groups: create, add members, seal, read. Counters and
completion are the triggers of migration 0005, run inside whatever statement makes a
member final; an add or a seal locks the group's row first, so it waits for a write
that is completing the group and then sees it complete."""

from __future__ import annotations

from collections.abc import Sequence

from offload.store import group_rules
from offload.store.postgres import group_queries as G
from offload.store.postgres import queries as Q
from offload.store.postgres.core import PostgresCore
from offload.store.postgres.jobs import job_arrays
from offload.store.postgres.listen import payload
from offload.store.postgres.pool import Conn
from offload.types import GroupRow, GroupState, NewGroup, NewJob


class GroupsMixin(PostgresCore):
    """Groups of jobs (a part of :class:`PostgresStore`)."""

    def group_create(self, group: NewGroup) -> GroupRow:
        def create(c: Conn) -> GroupRow:
            started, stopped = True, False
            if group.after is not None:
                previous = c.execute(self.q(G.GROUP_PREVIOUS), (group.after,)).fetchone()
                if previous is None:
                    raise group_rules.group_missing(group.after, " (named as the stage before)")
                started, stopped = bool(previous[0]), bool(previous[0] and previous[1])
            cb = group.callback
            c.execute(
                self.q(G.INSERT_GROUP),
                {"id": group.id, "name": group.name, "started": started, "after": group.after,
                 "stop_on_failure": group.stop_on_failure,
                 "callback_id": group.callback_id if cb is not None else None,
                 "task": cb.task if cb else None, "queue": cb.queue if cb else None,
                 "priority": cb.priority if cb else None,
                 "max_attempts": cb.max_attempts if cb else None,
                 "timeout": Q.float_or_none(cb.timeout) if cb else None,
                 "options": cb.options if cb else None},
            )  # fmt: skip
            if stopped:
                c.execute(self.q(G.STOP_GROUP), (group.id,))
            return self._group(c, group.id, G.GET_GROUP)

        return self._run(create)

    def group_add(self, group_id: str, jobs: Sequence[NewJob]) -> list[str]:
        group_rules.check_members(group_id, jobs)

        def add(c: Conn) -> list[str]:
            row = self._group(c, group_id, G.LOCK_GROUP)
            if row.completed_at is not None:
                raise group_rules.group_closed(row)
            if not jobs:
                return []
            state = group_rules.member_state(row.state is not GroupState.WAITING)
            inserted = c.execute(
                self.q(G.INSERT_MEMBERS),
                [state, group_id, *job_arrays(jobs)],
            ).fetchall()
            c.execute(self.q(G.GROW_GROUP), (len(inserted), group_id))
            if state == "queued":
                self._notify(c, payload(j.queue for j in jobs))
            return [j.id for j in jobs]

        return self._run(add)

    def group_seal(self, group_id: str) -> GroupRow:
        def seal(c: Conn) -> GroupRow:
            self._group(c, group_id, G.LOCK_GROUP)
            c.execute(self.q(G.SEAL_GROUP), (group_id,))
            return self._group(c, group_id, G.GET_GROUP)

        return self._run(seal)

    def group_get(self, group_id: str) -> GroupRow | None:
        rows = self._read(G.GET_GROUP, (group_id,))
        return group_rules.group_row(rows[0], self._where) if rows else None

    def group_list(self, *, limit: int = 50, before_id: str | None = None) -> list[GroupRow]:
        if before_id is None:
            rows = self._read(G.LIST_GROUPS, (limit,))
        else:
            rows = self._read(G.LIST_GROUPS_BEFORE, (before_id, limit))
        return [group_rules.group_row(r, self._where) for r in rows]

    def group_of_job(self, job_id: str) -> str | None:
        rows = self._read(G.GROUP_OF_JOB, (job_id,))
        value = rows[0][0] if rows else None
        return value if isinstance(value, str) else None

    def _group(self, c: Conn, group_id: str, query: str) -> GroupRow:
        row = c.execute(self.q(query), (group_id,)).fetchone()
        if row is None:
            raise group_rules.group_missing(group_id)
        return group_rules.group_row(row, self._where)
