"""The SQLite store's jobs: enqueue (with the free-space watermark and on the caller's own
connection), reads (get, list, history, log lines, counts) and what an operator does
(cancel, retry, delete, prune)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from offload.errors import ConfigError, StoreFull
from offload.settings import Settings
from offload.store import rules
from offload.store.base import Store
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.connection import Database, translate
from offload.store.sqlite.counts import Tally, recount
from offload.store.sqlite.wake import WakeSender
from offload.types import TERMINAL_STATES, JobEvent, JobFilter, JobMessage, JobRow, JobState, NewJob


def add_event(
    c: sqlite3.Connection,
    job_id: str,
    at: float,
    attempt: int,
    kind: str,
    worker: str | None,
    message: str = "",
) -> None:
    """One line of a job's history, inside the caller's write transaction."""
    c.execute(Q.INSERT_EVENT, (job_id, at, attempt, kind, worker, message))


_FINAL = frozenset(str(s) for s in TERMINAL_STATES)


def count_member(c: sqlite3.Connection, group_id: object, old: str, new: str | None) -> None:
    """Keep the counters of a member's group, inside the write that moved the member from
    state ``old`` to ``new`` (None: deleted): a member that became final counts in
    ``succeeded`` or ``failed``, one final no more (a retry) is taken back, one deleted
    before it finished leaves ``total``. The completion trigger of migration 0005 then
    decides on the group. Written here rather than as a trigger on the jobs table, which
    would cost every job's claim and outcome (SQLite runs a trigger program per row),
    group or not: every statement that moves a job's state calls this."""
    if group_id is None:
        return
    was = old in _FINAL
    if new is None:
        if not was:
            c.execute(Q.DROP_MEMBER, (group_id,))
        return
    if was == (new in _FINAL):
        return
    ok = (new == "succeeded") - (old == "succeeded")
    failed = (new in _FINAL and new != "succeeded") - (was and old != "succeeded")
    c.execute(Q.COUNT_MEMBER, (ok, failed, group_id))


def groups_of(c: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, str]:
    """The group of each of these jobs that is a member of a group not complete yet
    (nothing, at the cost of one index probe, while no group is open)."""
    if not job_ids or c.execute(Q.ANY_OPEN_GROUP).fetchone() is None:
        return {}
    return {str(r[0]): str(r[1]) for r in c.execute(Q.groups_of(len(job_ids)), list(job_ids))}


def queue_of_each(c: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, str]:
    """The queue of each of these jobs that is stored (those not stored left out)."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(job_ids), 500):
        found.update((str(r[0]), str(r[1])) for r in c.execute(Q.queue_of_each(len(chunk)), chunk))
    return found


class JobsMixin(Store):
    """Enqueue, read and administer jobs (a part of :class:`SQLiteStore`)."""

    settings: Settings
    path: str
    db: Database
    _waker: WakeSender

    # -- enqueue -----------------------------------------------------------------------
    def job_insert_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[str]:
        if not jobs:
            return []
        self._check_free_space()
        if connection is not None:
            return self._insert_on(connection, jobs)
        ids = self.db.write(lambda c: insert_jobs(c, jobs))
        self._waker.wake(j.queue for j in jobs)
        return ids

    def _insert_on(self, connection: Any, jobs: Sequence[NewJob]) -> list[str]:
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigError(
                f"expected a sqlite3.Connection for a SQLite store, got {type(connection).__name__}"
            )
        (_, _name, file), *_ = connection.execute("PRAGMA database_list").fetchall()
        if not file or os.path.realpath(file) != os.path.realpath(self.path):
            raise ConfigError(
                f"the connection is on {file or 'an in-memory database'!r}, "
                f"not on the store's file {self.path!r}"
            )
        if not self.db.migrated:
            self.db.conn()  # the tables must exist before the caller's transaction uses them
        try:
            return insert_jobs(connection, jobs)
        except sqlite3.DatabaseError as exc:
            raise translate(exc, self.path) from exc

    def _check_free_space(self) -> None:
        if not self.settings.min_free_bytes:
            return
        try:
            st = os.statvfs(os.path.dirname(self.path))
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < self.settings.min_free_bytes:
            raise StoreFull(
                f"{self.path}: only {free} bytes free on its disk, under the "
                f"{self.settings.min_free_bytes}-byte reserve kept for recording running jobs"
            )

    # -- reads -------------------------------------------------------------------------
    def job_get(self, job_id: str) -> JobRow | None:
        rows = self.db.read(Q.GET_JOB, (job_id,))
        return rules.job_row(rows[0], clock.wall()) if rows else None

    def job_list(self, filter: JobFilter) -> list[JobRow]:
        now = clock.wall()
        where, values = rules.job_filter_sql(filter, now=":now", param=lambda name: f":{name}")
        rows = self.db.read(Q.list_jobs(where), {**values, "now": now, "limit": filter.limit})
        return [rules.job_row(r, now) for r in rows]

    def job_events(self, job_id: str) -> list[JobEvent]:
        return [JobEvent(*r) for r in self.db.read(Q.JOB_EVENTS, (job_id,))]

    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        return [JobMessage(*r) for r in self.db.read(Q.JOB_MESSAGES, (job_id, limit))]

    def job_counts(self) -> dict[tuple[str, str], int]:
        return rules.with_scheduled(self.db.read(Q.COUNTS, (clock.wall(),)))

    def job_recount(self) -> None:
        """Rebuild the counts by queue and state (``offload_counts``, which ``job_counts``
        reads) from the jobs themselves: needed only after jobs were inserted, changed or
        deleted with SQL of one's own. It reads the whole jobs table while holding the
        write lock."""
        self.db.write(recount)

    def job_finished_by_minute(self, minutes: int) -> dict[tuple[float, str], int]:
        since = rules.minutes_since(clock.wall(), rules.check_minutes(minutes))
        return rules.finished_by_minute(self.db.read(Q.FINISHED_BY_MINUTE, (since,)))

    def queue_latency(self, queues: Sequence[str]) -> dict[str, float]:
        now = clock.wall()
        out: dict[str, float] = {}
        for queue in dict.fromkeys(queues):
            (oldest,) = self.db.read(Q.OLDEST_QUEUED, {"queue": queue})[0]
            if oldest is not None and oldest <= now:
                out[queue] = now - float(oldest)
        return out

    # -- cancel, retry, delete, prune ----------------------------------------------------
    def job_cancel(self, job_ids: Sequence[str], *, by: str | None = None) -> dict[str, JobState]:
        def cancel(c: sqlite3.Connection) -> dict[str, JobState]:
            now = clock.wall()
            out: dict[str, JobState] = {}
            tally = Tally()
            for job_id in job_ids:
                row = c.execute(Q.STATE_AND_ATTEMPT, (job_id,)).fetchone()
                if row is None:
                    continue
                state, attempt = JobState(row[0]), row[1]
                if state is JobState.QUEUED or state is JobState.WAITING:
                    c.execute(Q.CANCEL_QUEUED, (now, job_id))
                    count_member(c, row[2], state.value, JobState.CANCELLED.value)
                    tally.move(row[3], state.value, JobState.CANCELLED.value)
                    add_event(
                        c,
                        job_id,
                        now,
                        attempt,
                        "cancelled",
                        None,
                        rules.cancel_message(by, waiting=True),
                    )
                    state = JobState.CANCELLED
                elif state is JobState.RUNNING:
                    c.execute(Q.REQUEST_CANCEL, (job_id,))
                    add_event(
                        c,
                        job_id,
                        now,
                        attempt,
                        "cancel_requested",
                        None,
                        rules.cancel_message(by, waiting=False),
                    )
                out[job_id] = state
            tally.flush(c)
            return out

        return self.db.write(cancel)

    def job_retry(self, job_ids: Sequence[str]) -> list[str]:
        def retry(c: sqlite3.Connection) -> list[str]:
            now = clock.wall()
            done = []
            tally = Tally()
            for job_id in job_ids:
                before = c.execute(Q.STATE_AND_ATTEMPT, (job_id,)).fetchone()
                try:
                    row = c.execute(Q.RETRY, (now, job_id)).fetchone()
                except sqlite3.IntegrityError:
                    continue  # another job with the same unique key is active
                if row is not None:
                    count_member(c, before[2], str(before[0]), JobState.QUEUED.value)
                    tally.move(before[3], before[0], JobState.QUEUED.value)
                    add_event(c, job_id, now, row[0], "retried", None, "requeued by hand")
                    done.append(job_id)
            tally.flush(c)
            return done

        done = self.db.write(retry)
        if done:
            self._waker.wake(r[0] for r in self.db.read(Q.queues_of(len(done)), done))
        return done

    def job_delete(self, job_ids: Sequence[str]) -> list[str]:
        def delete(c: sqlite3.Connection) -> list[str]:
            done = []
            tally = Tally()
            for job_id in job_ids:
                row = c.execute(Q.DELETE_JOB, (job_id,)).fetchone()
                if row is not None:
                    count_member(c, row[1], str(row[0]), None)
                    tally.move(row[2], row[0], None)
                    c.execute(Q.DELETE_EVENTS, (job_id,))
                    c.execute(Q.DELETE_MESSAGES, (job_id,))
                    done.append(job_id)
            tally.flush(c)
            return done

        return self.db.write(delete)

    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        finished = [JobState(s).value for s in states if JobState(s).finished]
        if not finished:
            return 0

        def prune(c: sqlite3.Connection) -> int:
            cutoff = clock.wall() - older_than
            deleted = c.execute(Q.prune_jobs(len(finished)), [*finished, cutoff]).fetchall()
            ids = [r[0] for r in deleted]
            tally = Tally()
            for _, queue, state in deleted:
                tally.add(queue, state, -1)
            tally.flush(c)
            for chunk in _chunks(ids, 500):
                c.execute(Q.delete_events_of(len(chunk)), chunk)
                c.execute(Q.delete_messages_of(len(chunk)), chunk)
            return len(ids)

        return self.db.write(prune)


def insert_jobs(c: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[str]:
    """Insert ``jobs`` on ``c`` (in its transaction); their ids, or for a job whose unique
    key is held (see ``NewJob``), the id of the job that holds it."""
    now = clock.wall()
    ids: list[str] = []
    rows = []
    batch_keys: dict[str, str] = {}
    for j in jobs:
        if j.unique_key is not None and (j.debounce is not None or j.unique_for is not None):
            ids.append(_insert_keyed(c, j, now))
            continue
        if j.unique_key is not None:
            found = (
                batch_keys.get(j.unique_key)
                or c.execute(Q.ACTIVE_WITH_KEY, (j.unique_key,)).fetchone()
            )
            if found:
                ids.append(found if isinstance(found, str) else found[0])
                continue
            batch_keys[j.unique_key] = j.id
        rows.append(_row(j, now))
        ids.append(j.id)
    c.executemany(Q.INSERT_JOB, rows)  # queued: no count kept (see counts.py)
    return ids


def _row(j: NewJob, now: float) -> tuple[Any, ...]:
    """The values of ``Q.INSERT_JOB`` for ``j``; a debounced job runs no earlier than its
    debounce from now, and holds no unique key in its row (see ``_insert_keyed``)."""
    run_at = rules.run_at_of(j, now)
    key = None if j.debounce is not None else j.unique_key
    return (
        j.id, j.task, j.queue, j.priority, j.args, j.kwargs, j.max_attempts, now, run_at,
        j.timeout, j.options, key, j.limit_key, j.limit_max,
    )  # fmt: skip


def _insert_keyed(c: sqlite3.Connection, j: NewJob, now: float) -> str:
    """Insert ``j``, whose key has a window or debounces, unless the key is held; the id
    of the job that holds the key afterwards. Inserted at once (not with the batch), so a
    later job of the same batch finds it."""
    key = j.unique_key
    assert key is not None
    held = c.execute(Q.KEY_GET, (key,)).fetchone()
    if held is not None:
        holder, until = held
        found = c.execute(Q.KEY_JOB, (holder,)).fetchone()
        if j.debounce is not None:
            if found is not None:
                merged = c.execute(
                    Q.DEBOUNCE_MERGE, (j.args, j.kwargs, rules.run_at_of(j, now), holder, j.task)
                )
                if merged.rowcount:
                    return str(holder)
        elif found is not None and until is not None and until > now:
            if rules.holds_key(found[0], j.unique_states):
                return str(holder)
    if j.debounce is None:
        active = c.execute(Q.ACTIVE_WITH_KEY, (key,)).fetchone()
        if active is not None:
            return str(active[0])
    c.execute(Q.INSERT_JOB, _row(j, now))
    until = None if j.debounce is not None else now + float(j.unique_for or 0.0)
    c.execute(Q.KEY_SET, (key, j.id, until))
    return j.id


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
