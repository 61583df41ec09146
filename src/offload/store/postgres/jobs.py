"""The PostgreSQL store's jobs: enqueue (also on the caller's own connection, with the
NOTIFY sent when that transaction commits), reads (get, list, history, log lines, counts)
and what an operator does (cancel, retry, delete, prune)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import tuple_row

from offload.errors import ConfigError, StoreError
from offload.store import rules
from offload.store.postgres import queries as Q
from offload.store.postgres.core import PostgresCore
from offload.store.postgres.listen import payload
from offload.store.postgres.pool import Conn
from offload.types import JobEvent, JobFilter, JobMessage, JobRow, JobState, NewJob

_IDLE = psycopg.pq.TransactionStatus.IDLE


class JobsMixin(PostgresCore):
    """Enqueue, read and administer jobs (a part of :class:`PostgresStore`)."""

    # -- enqueue -----------------------------------------------------------------------
    def job_insert_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[str]:
        if not jobs:
            return []
        note = payload(j.queue for j in jobs)
        if connection is None:
            return self._run(lambda c: self._insert(c, jobs, note))
        if not self._checked:
            self._ensure_schema()  # the schema in place, the database name known
        conn = self._caller_connection(connection)
        try:
            if conn.autocommit and conn.info.transaction_status == _IDLE:
                # Not inside a transaction: make the batch one (committed here).
                with conn.transaction():
                    return self._insert(conn, jobs, note)
            # The caller's transaction: visible (and NOTIFY sent) when the caller commits.
            return self._insert(conn, jobs, note)
        except psycopg.Error as exc:
            raise self.db.translate(exc) from exc

    def _caller_connection(self, connection: Any) -> Conn:
        if not isinstance(connection, psycopg.Connection):
            raise ConfigError(
                "expected a psycopg (3) Connection for a PostgreSQL store, "
                f"got {type(connection).__name__}"
            )
        if connection.closed:
            raise ConfigError("the connection passed to enqueue is closed")
        if self._dbname is not None and connection.info.dbname != self._dbname:
            raise ConfigError(
                f"the connection is on database {connection.info.dbname!r}, "
                f"not on the store's database {self._dbname!r}"
            )
        return connection

    def _insert(self, conn: Conn, jobs: Sequence[NewJob], note: str) -> list[str]:
        # A cursor of our own: the caller's connection may have another row factory.
        c = conn.cursor(row_factory=tuple_row)
        plain = [j for j in jobs if j.unique_key is None]
        if plain:
            c.execute(self.q(Q.INSERT_PLAIN), job_arrays(plain))
        existing: dict[str, str] = {}
        for j in jobs:
            if j.unique_key is None:
                continue
            if j.debounce is not None or j.unique_for is not None:
                existing[j.id] = self._insert_keyed(c, j)
            else:
                existing[j.id] = self._insert_unique(c, j)
        self._notify(c, note)
        return [existing.get(j.id, j.id) if j.unique_key is not None else j.id for j in jobs]

    def _insert_unique(self, c: psycopg.Cursor[tuple[Any, ...]], j: NewJob) -> str:
        """Insert one job with a unique key; the id of the active job that has it."""
        query = self.q(Q.INSERT_UNIQUE)
        params = _one_job(j)
        # The conflicting job may finish between the insert and the select (then insert
        # again), or be committed after this statement's snapshot (then select again).
        for _ in range(20):
            row = c.execute(query, params).fetchone()
            if row is not None:
                return str(row[0])
        raise StoreError(f"{self._where}: unique key {j.unique_key!r} kept changing hands")

    def _insert_keyed(self, c: psycopg.Cursor[tuple[Any, ...]], j: NewJob) -> str:
        """Insert one job whose key has a window or debounces, unless the key is held;
        the id of the job that holds the key afterwards. The key's row lock (taken
        first) makes concurrent enqueues of one key take turns."""
        key = j.unique_key
        window = None if j.debounce is not None else float(j.unique_for or 0.0)
        lock = {"key": key, "id": j.id, "until": None}
        holder, in_window, fresh = c.execute(self.q(Q.KEY_LOCK), lock).fetchone() or (
            None, False, True,
        )  # fmt: skip
        if not fresh:
            if j.debounce is not None:
                merged = c.execute(
                    self.q(Q.DEBOUNCE_MERGE), {**_one_job(j), "holder": holder}
                ).fetchone()
                if merged is not None:
                    return str(holder)
            elif in_window:
                found = c.execute(self.q(Q.KEY_JOB), (holder,)).fetchone()
                if found is not None and rules.holds_key(found[0], j.unique_states):
                    return str(holder)
        if j.debounce is not None:
            c.execute(self.q(Q.INSERT_DEBOUNCED), {**_one_job(j), "key": None})
            got = j.id
        else:
            got = self._insert_unique(c, j)
        if got == j.id:
            c.execute(self.q(Q.KEY_SET), (j.id, window, key))
        elif fresh:
            c.execute(self.q(Q.KEY_DROP), (key,))  # an unfinished plain job holds the key
        return got

    # -- reads -------------------------------------------------------------------------
    def job_get(self, job_id: str) -> JobRow | None:
        rows = self._read(Q.GET_JOB, (job_id,))
        return rules.job_row(rows[0], rows[0][-1]) if rows else None

    def job_list(self, filter: JobFilter) -> list[JobRow]:
        where, values = rules.job_filter_sql(filter, now="{now}", param=lambda name: f"%({name})s")
        rows = self._read(Q.list_jobs(where), {**values, "limit": filter.limit})
        return [rules.job_row(r, r[-1]) for r in rows]

    def job_events(self, job_id: str) -> list[JobEvent]:
        return [JobEvent(*r) for r in self._read(Q.JOB_EVENTS, (job_id,))]

    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        return [JobMessage(*r) for r in self._read(Q.JOB_MESSAGES, (job_id, limit))]

    def job_counts(self) -> dict[tuple[str, str], int]:
        return rules.with_scheduled(self._read(Q.COUNTS))

    def job_recount(self) -> None:
        """Rebuild the counts by queue and state that ``job_counts`` reads (migration
        0007) from the jobs themselves. The triggers count every statement, SQL of one's
        own included, so this is needed only after writes made with triggers off
        (``session_replication_role = replica``). Writers wait while it reads the whole
        jobs table; readers do not."""

        def recount(c: Conn) -> None:
            c.execute(Q.COUNTS_LOCK, (self.schema,))
            for statement in Q.RECOUNT:
                c.execute(self.q(statement))

        self._run(recount)

    def job_finished_by_minute(self, minutes: int) -> dict[tuple[float, str], int]:
        rows = self._read(Q.FINISHED_BY_MINUTE, (rules.check_minutes(minutes) - 1,))
        return rules.finished_by_minute(rows)

    def queue_latency(self, queues: Sequence[str]) -> dict[str, float]:
        rows = self._read(Q.QUEUE_LATENCY, (list(dict.fromkeys(queues)),))
        return {q: float(age) for q, age in rows if age is not None and age >= 0}

    # -- cancel, retry, delete, prune ----------------------------------------------------
    def job_cancel(self, job_ids: Sequence[str], *, by: str | None = None) -> dict[str, JobState]:
        def cancel(c: Conn) -> dict[str, JobState]:
            out: dict[str, JobState] = {}
            rows = c.execute(self.q(Q.LOCK_FOR_CANCEL), (list(job_ids),)).fetchall()
            found = {r[0]: (JobState(r[1]), r[2]) for r in rows}
            for job_id in job_ids:
                if job_id not in found or job_id in out:
                    continue
                state, attempt = found[job_id]
                if state is JobState.QUEUED or state is JobState.WAITING:
                    c.execute(self.q(Q.CANCEL_QUEUED), (job_id,))
                    self._event(
                        c,
                        job_id,
                        attempt,
                        "cancelled",
                        None,
                        rules.cancel_message(by, waiting=True),
                    )
                    state = JobState.CANCELLED
                elif state is JobState.RUNNING:
                    c.execute(self.q(Q.REQUEST_CANCEL), (job_id,))
                    self._event(
                        c,
                        job_id,
                        attempt,
                        "cancel_requested",
                        None,
                        rules.cancel_message(by, waiting=False),
                    )
                out[job_id] = state
            return out

        return self._run(cancel)

    def job_retry(self, job_ids: Sequence[str]) -> list[str]:
        query = self.q(Q.RETRY)

        def retry(c: Conn) -> list[str]:
            done: list[str] = []
            queues: set[str] = set()
            for job_id in dict.fromkeys(job_ids):
                try:
                    with c.transaction():  # a savepoint: a unique-key clash skips this job
                        row = c.execute(query, (job_id,)).fetchone()
                except pg_errors.UniqueViolation:
                    continue  # another job with the same unique key is active
                if row is not None:
                    self._event(c, job_id, row[0], "retried", None, "requeued by hand")
                    done.append(job_id)
                    queues.add(row[1])
            if queues:
                self._notify(c, payload(queues))
            return done

        return self._run(retry)

    def job_delete(self, job_ids: Sequence[str]) -> list[str]:
        def delete(c: Conn) -> list[str]:
            rows = c.execute(self.q(Q.DELETE), (list(job_ids),)).fetchall()
            deleted = {r[0] for r in rows}
            return [j for j in dict.fromkeys(job_ids) if j in deleted]

        return self._run(delete)

    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        finished = [JobState(s).value for s in states if JobState(s).finished]
        if not finished:
            return 0
        query = self.q(Q.PRUNE)
        rows = self._run(lambda c: c.execute(query, (finished, float(older_than))).fetchall())
        return int(rows[0][0])


def job_arrays(jobs: Sequence[NewJob]) -> list[list[Any]]:
    """The arrays ``queries.INSERT_PLAIN`` and ``group_queries.INSERT_MEMBERS`` unnest, one per
    column."""
    return [
        [j.id for j in jobs], [j.task for j in jobs], [j.queue for j in jobs],
        [j.priority for j in jobs], [j.args for j in jobs], [j.kwargs for j in jobs],
        [j.max_attempts for j in jobs], [Q.float_or_none(j.run_at) for j in jobs],
        [float(j.delay) for j in jobs], [Q.float_or_none(j.timeout) for j in jobs],
        [j.options for j in jobs], [j.limit_key for j in jobs], [j.limit_max for j in jobs],
    ]  # fmt: skip


def _one_job(j: NewJob) -> dict[str, Any]:
    """The parameters of ``queries._INSERT_ONE`` for ``j``."""
    return {
        "id": j.id, "task": j.task, "queue": j.queue, "priority": j.priority,
        "args": j.args, "kwargs": j.kwargs, "max_attempts": j.max_attempts,
        "run_at": j.run_at, "delay": float(j.delay), "timeout": j.timeout,
        "options": j.options, "key": j.unique_key, "limit_key": j.limit_key,
        "limit_max": j.limit_max, "debounce": Q.float_or_none(j.debounce),
    }  # fmt: skip
