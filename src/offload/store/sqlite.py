"""The SQLite store: an embedded file, no server.

* WAL journal, ``synchronous=NORMAL`` by default (FULL configurable), a busy timeout and
  ``BEGIN IMMEDIATE`` for every write, retried with jittered backoff while the database is
  locked, so many processes can enqueue at once without "database is locked".
* One connection per process and thread, opened lazily and never used across a fork:
  the pid is checked on every use.
* A free-space watermark: an insert is refused with StoreFull while the disk has less
  than ``min_free_bytes`` free, so completions of accepted jobs still have room.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from offload.errors import ConfigError, StoreError, StoreFull, StoreUnavailable
from offload.settings import Settings
from offload.store.base import Store, Waiter
from offload.store.migrate import check_version, latest_version, migrations
from offload.store.rules import CLAIM_COLUMNS, PROCESS_COLUMNS
from offload.store.wake import SocketWaiter, WakeSender, wake_dir
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    JobEvent,
    JobFilter,
    JobMessage,
    JobRow,
    JobState,
    MessageAdd,
    NewJob,
    Outcome,
    ProcessInfo,
    Progress,
    ProgressUpdate,
    RenewResult,
    Rescued,
    SaveValue,
)

T = TypeVar("T")

_JOB_COLUMNS = (
    "id, task, queue, state, priority, args, kwargs, attempt, max_attempts, errors, crashes,"
    " created_at, run_at, started_at, finished_at, leased_until, worker_id, timeout, options,"
    " unique_key, progress_current, progress_total, progress_message, result, error, saved,"
    " cancel_requested"
)


def database_path(url: str) -> str:
    """``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` to a filesystem path."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"expected a SQLite url like 'sqlite:///jobs.db', got {url!r}")
    path = url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ConfigError(
            f"url {url!r}: a SQLite store needs a file that every process can open, "
            "not an in-memory database"
        )
    return path


class SQLiteStore(Store):
    """The embedded default store. See the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.url
        self.path = os.path.abspath(database_path(settings.url))
        self._local = threading.local()
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._waker = WakeSender(wake_dir(self.path))

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreUnavailable(f"{self.path}: folder {folder} does not exist")
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.settings.busy_timeout,
                isolation_level=None,
                check_same_thread=True,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreUnavailable(f"{self.path}: could not enable WAL (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.settings.synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return conn

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        # A connection is never used in a process other than the one that opened it:
        # after a fork the child opens its own (and never closes the parent's).
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn = conn
            local.pid = os.getpid()
            if not self._migrated:
                self._ensure_schema(conn)
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        self._waker.close()

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        with self._migrate_lock:
            if self._migrated:
                return
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < latest_version("sqlite"):
                self._apply_migrations(conn)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            check_version(version, "sqlite", self.path)
            self._migrated = True

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        def apply(c: sqlite3.Connection) -> None:
            current = c.execute("PRAGMA user_version").fetchone()[0]
            for migration in migrations("sqlite"):
                if migration.version > current:
                    for statement in _split_sql(migration.sql):
                        c.execute(statement)
                    c.execute(f"PRAGMA user_version = {migration.version}")

        self._with_retry(conn, apply)

    # -- transactions -------------------------------------------------------------------
    def _with_retry(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        deadline = time.monotonic() + self.settings.busy_timeout
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(conn)
                    conn.execute("COMMIT")
                    return out
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if _is_locked(exc) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.1)
                    continue
                raise _translate(exc, self.path) from exc
            except sqlite3.DatabaseError as exc:
                raise _translate(exc, self.path) from exc

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._with_retry(self._conn(), fn)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc

    # -- lifecycle ---------------------------------------------------------------------
    def migrate(self) -> int:
        conn = self._conn()
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def schema_check(self) -> None:
        conn = self._conn()
        check_version(conn.execute("PRAGMA user_version").fetchone()[0], "sqlite", self.path)

    def now(self) -> float:
        return time.time()

    # -- jobs ------------------------------------------------------------------------------
    def job_insert_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[str]:
        if not jobs:
            return []
        self._check_free_space()
        if connection is not None:
            return self._insert_on(connection, jobs)
        ids = self._write(lambda c: self._insert(c, jobs))
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
        if not self._migrated:
            self._conn()  # the tables must exist before the caller's transaction uses them
        try:
            return self._insert(connection, jobs)
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.path) from exc

    def _insert(self, c: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[str]:
        now = time.time()
        ids: list[str] = []
        rows = []
        batch_keys: dict[str, str] = {}
        for j in jobs:
            if j.unique_key is not None:
                found = (
                    batch_keys.get(j.unique_key)
                    or c.execute(
                        "SELECT id FROM offload_jobs WHERE unique_key = ?"
                        " AND state IN ('queued', 'running')",
                        (j.unique_key,),
                    ).fetchone()
                )
                if found:
                    ids.append(found if isinstance(found, str) else found[0])
                    continue
                batch_keys[j.unique_key] = j.id
            run_at = j.run_at if j.run_at is not None else now + j.delay
            rows.append(
                (j.id, j.task, j.queue, j.priority, j.args, j.kwargs, j.max_attempts, now,
                 run_at, j.timeout, j.options, j.unique_key)
            )  # fmt: skip
            ids.append(j.id)
        c.executemany(
            "INSERT INTO offload_jobs (id, task, queue, state, priority, args, kwargs,"
            " max_attempts, created_at, run_at, timeout, options, unique_key)"
            " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return ids

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

    def job_claim(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
        job_ids: Sequence[str] | None = None,
    ) -> list[ClaimedJob]:
        if limit <= 0 or not queues or not tasks:
            return []
        if job_ids is not None:
            return self._claim_ids(worker_id, queues, tasks, limit, lease, job_ids)
        return self._write(lambda c: self._claim_due(c, worker_id, queues, tasks, limit, lease))

    def _claim_due(
        self,
        c: sqlite3.Connection,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
    ) -> list[ClaimedJob]:
        """Claim due jobs inside the caller's write transaction."""
        if limit <= 0 or not queues or not tasks:
            return []
        task_marks = ",".join("?" * len(tasks))
        one = (
            "SELECT id, priority, run_at FROM offload_jobs WHERE state = 'queued'"
            f" AND queue = ? AND run_at <= ? AND task IN ({task_marks})"
            " ORDER BY priority DESC, run_at, id LIMIT ?"
        )
        # One index range per queue, merged: a single "queue IN (...)" would sort every
        # due row of every queue on each claim.
        if len(queues) == 1:
            select = f"SELECT id FROM ({one})"
        else:
            union = " UNION ALL ".join(f"SELECT * FROM ({one})" for _ in queues)
            select = f"SELECT id FROM ({union}) ORDER BY priority DESC, run_at, id LIMIT ?"
        now = time.time()
        bound: list[Any] = []
        for queue in queues:
            bound.extend([queue, now, *tasks, limit])
        if len(queues) > 1:
            bound.append(limit)
        rows = c.execute(
            "UPDATE offload_jobs SET state = 'running', attempt = attempt + 1,"
            " worker_id = ?, leased_until = ?, started_at = ?, cancel_requested = 0"
            f" WHERE id IN ({select}) RETURNING {CLAIM_COLUMNS}, run_at",
            [worker_id, now + lease, now, *bound],
        ).fetchall()
        c.executemany(
            "INSERT INTO offload_events (job_id, at, attempt, kind, worker_id)"
            " VALUES (?, ?, ?, 'started', ?)",
            [(r[0], now, r[5], worker_id) for r in rows],
        )
        # RETURNING comes in no particular order: hand jobs out in claim order.
        rows.sort(key=lambda r: (-r[11], r[12], r[0]))
        return [ClaimedJob(*r[:12]) for r in rows]

    def _claim_ids(
        self,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
        job_ids: Sequence[str],
    ) -> list[ClaimedJob]:
        ids = list(job_ids)[:limit]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        q_marks = ",".join("?" * len(queues))
        t_marks = ",".join("?" * len(tasks))

        def claim(c: sqlite3.Connection) -> list[ClaimedJob]:
            now = time.time()
            rows = c.execute(
                "UPDATE offload_jobs SET state = 'running', attempt = attempt + 1,"
                " worker_id = ?, leased_until = ?, started_at = ?, cancel_requested = 0"
                f" WHERE id IN ({marks}) AND state = 'queued' AND run_at <= ?"
                f" AND queue IN ({q_marks}) AND task IN ({t_marks})"
                f" RETURNING {CLAIM_COLUMNS}",
                [worker_id, now + lease, now, *ids, now, *queues, *tasks],
            ).fetchall()
            c.executemany(
                "INSERT INTO offload_events (job_id, at, attempt, kind, worker_id)"
                " VALUES (?, ?, ?, 'started', ?)",
                [(r[0], now, r[5], worker_id) for r in rows],
            )
            return [ClaimedJob(*r) for r in rows]

        return self._write(claim)

    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        if not runs:
            return RenewResult()

        def renew(c: sqlite3.Connection) -> RenewResult:
            now = time.time()
            lost, cancel = [], []
            for job_id, attempt in runs:
                row = c.execute(
                    "UPDATE offload_jobs SET leased_until = ? WHERE id = ? AND attempt = ?"
                    " AND state = 'running' AND worker_id = ? RETURNING cancel_requested",
                    (now + lease, job_id, attempt, worker_id),
                ).fetchone()
                if row is None:
                    lost.append(job_id)
                elif row[0]:
                    cancel.append(job_id)
            return RenewResult(lost, cancel)

        return self._write(renew)

    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        def rescue(c: sqlite3.Connection) -> list[Rescued]:
            now = time.time()
            rows = c.execute(
                "SELECT id, attempt, crashes, worker_id FROM offload_jobs"
                " WHERE state = 'running' AND leased_until < ?",
                (now,),
            ).fetchall()
            out = []
            for job_id, attempt, crashes, worker in rows:
                state = JobState.QUARANTINED if crashes + 1 >= crash_limit else JobState.QUEUED
                reason = f"lease expired (worker {worker} stopped heartbeating)"
                error = json.dumps({"type": "LeaseExpired", "message": reason, "traceback": ""})
                c.execute(
                    "UPDATE offload_jobs SET state = ?, crashes = crashes + 1, error = ?,"
                    " leased_until = NULL, worker_id = NULL, run_at = min(run_at, ?),"
                    " finished_at = CASE WHEN ? = 'quarantined' THEN ? END"
                    " WHERE id = ? AND attempt = ? AND state = 'running'",
                    (state.value, error, now, state.value, now, job_id, attempt),
                )
                kind = "quarantined" if state is JobState.QUARANTINED else "lease_expired"
                self._event(c, job_id, now, attempt, kind, worker, reason)
                out.append(Rescued(job_id, attempt, state))
            return out

        return self._write(rescue)

    @staticmethod
    def _event(
        c: sqlite3.Connection,
        job_id: str,
        at: float,
        attempt: int,
        kind: str,
        worker: str | None,
        message: str = "",
    ) -> None:
        c.execute(
            "INSERT INTO offload_events (job_id, at, attempt, kind, worker_id, message)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, at, attempt, kind, worker, message),
        )

    def job_write(
        self,
        *,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> list[bool]:
        if not (outcomes or progress or messages or saves):
            return []
        return self._write(lambda c: self._record(c, outcomes, progress, messages, saves))

    def job_write_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        def both(c: sqlite3.Connection) -> tuple[list[bool], list[ClaimedJob]]:
            accepted = self._record(c, outcomes, progress, messages, saves)
            jobs = self._claim_due(
                c, claim.worker_id, claim.queues, claim.tasks, claim.limit, claim.lease
            )
            return accepted, jobs

        return self._write(both)

    def _record(
        self,
        c: sqlite3.Connection,
        outcomes: Sequence[Outcome],
        progress: Sequence[ProgressUpdate],
        messages: Sequence[MessageAdd],
        saves: Sequence[SaveValue],
    ) -> list[bool]:
        """The writes of :meth:`job_write`, inside the caller's write transaction."""
        now = time.time()
        if progress:
            c.executemany(
                "UPDATE offload_jobs SET progress_current = ?, progress_total = ?,"
                " progress_message = coalesce(?, progress_message)"
                " WHERE id = ? AND attempt = ? AND state = 'running'",
                [(p.current, p.total, p.message, p.job_id, p.attempt) for p in progress],
            )
        if messages:
            c.executemany(
                "INSERT INTO offload_messages (job_id, at, attempt, text)"
                " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM offload_jobs"
                " WHERE id = ? AND attempt = ? AND state = 'running')",
                [(m.job_id, now, m.attempt, m.text, m.job_id, m.attempt) for m in messages],
            )
        for s in saves:
            row = c.execute(
                "SELECT saved FROM offload_jobs WHERE id = ? AND attempt = ? AND state = 'running'",
                (s.job_id, s.attempt),
            ).fetchone()
            if row is not None:
                saved = json.loads(row[0])
                saved[s.key] = json.loads(s.value)
                c.execute(
                    "UPDATE offload_jobs SET saved = ? WHERE id = ?",
                    (json.dumps(saved, separators=(",", ":")), s.job_id),
                )
        return [self._finish(c, o, now) for o in outcomes]

    def _finish(self, c: sqlite3.Connection, o: Outcome, now: float) -> bool:
        errors = 1 if o.count_error and o.state is not JobState.SUCCEEDED else 0
        crashes = 1 if o.crashed else 0
        if o.state is JobState.QUEUED:
            # Run again at once (a crash, a requeue at shutdown) keeps the job's place in
            # line: it is not sent behind every job that became due while it ran.
            cur = c.execute(
                "UPDATE offload_jobs SET state = 'queued',"
                " run_at = CASE WHEN ? > 0 THEN ? ELSE min(run_at, ?) END,"
                " errors = errors + ?, crashes = crashes + ?, error = coalesce(?, error),"
                " leased_until = NULL, worker_id = NULL"
                " WHERE id = ? AND attempt = ? AND state = 'running'",
                (o.delay, now + o.delay, now, errors, crashes, o.error, o.job_id, o.attempt),
            )
            kind = "retry" if o.count_error or o.crashed else "requeued"
        else:
            cur = c.execute(
                "UPDATE offload_jobs SET state = ?, result = ?, error = ?, finished_at = ?,"
                " errors = errors + ?, crashes = crashes + ?, leased_until = NULL"
                " WHERE id = ? AND attempt = ? AND state = 'running'",
                (o.state.value, o.result, o.error, now, errors, crashes, o.job_id, o.attempt),
            )
            kind = o.state.value
        accepted = cur.rowcount == 1
        if not accepted:
            kind = "refused"
            reason = f"stale {o.state.value} outcome of attempt {o.attempt} refused"
            exists = c.execute("SELECT 1 FROM offload_jobs WHERE id = ?", (o.job_id,)).fetchone()
            if exists is None:
                return False
            self._event(c, o.job_id, now, o.attempt, kind, o.worker_id, reason)
            return False
        self._event(c, o.job_id, now, o.attempt, kind, o.worker_id, o.reason)
        return True

    def job_get(self, job_id: str) -> JobRow | None:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM offload_jobs WHERE id = ?", (job_id,))
        return _job_record(rows[0], time.time()) if rows else None

    def job_list(self, filter: JobFilter) -> list[JobRow]:
        now = time.time()
        where: list[str] = []
        params: list[Any] = []
        if filter.state is JobState.SCHEDULED:
            where.append("state = 'queued' AND run_at > ?")
            params.append(now)
        elif filter.state is JobState.QUEUED:
            where.append("state = 'queued' AND run_at <= ?")
            params.append(now)
        elif filter.state is not None:
            where.append("state = ?")
            params.append(JobState(filter.state).value)
        if filter.queue:
            where.append("queue = ?")
            params.append(filter.queue)
        if filter.task:
            where.append("task = ?")
            params.append(filter.task)
        if filter.before_id:
            where.append("id < ?")
            params.append(filter.before_id)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM offload_jobs {clause} ORDER BY id DESC LIMIT ?",
            [*params, filter.limit],
        )
        return [_job_record(r, now) for r in rows]

    def job_events(self, job_id: str) -> list[JobEvent]:
        rows = self._read(
            "SELECT at, attempt, kind, worker_id, message FROM offload_events"
            " WHERE job_id = ? ORDER BY seq",
            (job_id,),
        )
        return [JobEvent(*r) for r in rows]

    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        rows = self._read(
            "SELECT at, attempt, text FROM (SELECT seq, at, attempt, text FROM offload_messages"
            " WHERE job_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (job_id, limit),
        )
        return [JobMessage(*r) for r in rows]

    def job_cancel(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        def cancel(c: sqlite3.Connection) -> dict[str, JobState]:
            now = time.time()
            out: dict[str, JobState] = {}
            for job_id in job_ids:
                row = c.execute(
                    "SELECT state, attempt FROM offload_jobs WHERE id = ?", (job_id,)
                ).fetchone()
                if row is None:
                    continue
                state, attempt = JobState(row[0]), row[1]
                if state is JobState.QUEUED:
                    c.execute(
                        "UPDATE offload_jobs SET state = 'cancelled', finished_at = ?"
                        " WHERE id = ? AND state = 'queued'",
                        (now, job_id),
                    )
                    self._event(c, job_id, now, attempt, "cancelled", None, "cancelled")
                    state = JobState.CANCELLED
                elif state is JobState.RUNNING:
                    c.execute(
                        "UPDATE offload_jobs SET cancel_requested = 1 WHERE id = ?", (job_id,)
                    )
                    self._event(c, job_id, now, attempt, "cancel_requested", None, "")
                out[job_id] = state
            return out

        return self._write(cancel)

    def job_retry(self, job_ids: Sequence[str]) -> list[str]:
        def retry(c: sqlite3.Connection) -> list[str]:
            now = time.time()
            done = []
            for job_id in job_ids:
                try:
                    row = c.execute(
                        "UPDATE offload_jobs SET state = 'queued', run_at = ?, errors = 0,"
                        " crashes = 0, error = NULL, result = NULL, finished_at = NULL,"
                        " cancel_requested = 0 WHERE id = ? AND state IN"
                        " ('succeeded', 'failed', 'cancelled', 'quarantined') RETURNING attempt",
                        (now, job_id),
                    ).fetchone()
                except sqlite3.IntegrityError:
                    continue  # another job with the same unique key is active
                if row is not None:
                    self._event(c, job_id, now, row[0], "retried", None, "requeued by hand")
                    done.append(job_id)
            return done

        done = self._write(retry)
        if done:
            self._waker.wake(r[0] for r in self._read_queues(done))
        return done

    def _read_queues(self, job_ids: Sequence[str]) -> list[Any]:
        marks = ",".join("?" * len(job_ids))
        return self._read(f"SELECT DISTINCT queue FROM offload_jobs WHERE id IN ({marks})", job_ids)

    def job_delete(self, job_ids: Sequence[str]) -> list[str]:
        def delete(c: sqlite3.Connection) -> list[str]:
            done = []
            for job_id in job_ids:
                row = c.execute(
                    "DELETE FROM offload_jobs WHERE id = ? AND state != 'running' RETURNING id",
                    (job_id,),
                ).fetchone()
                if row is not None:
                    c.execute("DELETE FROM offload_events WHERE job_id = ?", (job_id,))
                    c.execute("DELETE FROM offload_messages WHERE job_id = ?", (job_id,))
                    done.append(job_id)
            return done

        return self._write(delete)

    def job_counts(self) -> dict[tuple[str, str], int]:
        now = time.time()
        rows = self._read(
            "SELECT queue, CASE WHEN state = 'queued' AND run_at > ? THEN 'scheduled'"
            " ELSE state END AS s, count(*) FROM offload_jobs GROUP BY queue, s",
            (now,),
        )
        return {(q, s): n for q, s, n in rows}

    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        finished = [JobState(s).value for s in states if JobState(s).finished]
        if not finished:
            return 0
        marks = ",".join("?" * len(finished))

        def prune(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            ids = [
                r[0]
                for r in c.execute(
                    f"DELETE FROM offload_jobs WHERE state IN ({marks}) AND finished_at < ?"
                    " RETURNING id",
                    [*finished, cutoff],
                ).fetchall()
            ]
            for chunk in _chunks(ids, 500):
                m = ",".join("?" * len(chunk))
                c.execute(f"DELETE FROM offload_events WHERE job_id IN ({m})", chunk)
                c.execute(f"DELETE FROM offload_messages WHERE job_id IN ({m})", chunk)
            return len(ids)

        return self._write(prune)

    # -- processes -----------------------------------------------------------------------
    def process_heartbeat(self, processes: Sequence[ProcessInfo]) -> None:
        if not processes:
            return

        def beat(c: sqlite3.Connection) -> None:
            now = time.time()
            c.executemany(
                f"INSERT INTO offload_processes ({PROCESS_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
                " served = excluded.served, failed = excluded.failed,"
                " current_job = excluded.current_job, rss = excluded.rss,"
                " peak_rss = max(offload_processes.peak_rss, excluded.peak_rss),"
                " info = excluded.info, stopped_at = NULL",
                [
                    (p.id, p.kind, p.host, p.pid, p.parent_id, p.queues, p.started_at or now,
                     now, p.served, p.failed, p.current_job, p.rss, max(p.peak_rss, p.rss),
                     p.info)
                    for p in processes
                ],
            )  # fmt: skip

        self._write(beat)

    def process_stop(self, process_ids: Sequence[str]) -> None:
        if not process_ids:
            return

        def stop(c: sqlite3.Connection) -> None:
            now = time.time()
            c.executemany(
                "UPDATE offload_processes SET stopped_at = ?, current_job = NULL WHERE id = ?",
                [(now, p) for p in process_ids],
            )

        self._write(stop)

    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        now = time.time()
        rows = self._read(
            f"SELECT {PROCESS_COLUMNS} FROM offload_processes ORDER BY started_at, id"
        )
        out = []
        for r in rows:
            info = ProcessInfo(*r)
            if info.stopped_at is not None:
                status = "stopped"
            elif now - info.heartbeat_at > gone_after:
                status = "gone"
            else:
                status = "running"
            out.append(_with_status(info, status))
        return out

    def process_prune(self, *, older_than: float) -> int:
        def prune(c: sqlite3.Connection) -> int:
            cutoff = time.time() - older_than
            cur = c.execute(
                "DELETE FROM offload_processes WHERE coalesce(stopped_at, heartbeat_at) < ?",
                (cutoff,),
            )
            return cur.rowcount

        return self._write(prune)

    # -- locks ---------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        def take(c: sqlite3.Connection) -> bool:
            now = time.time()
            c.execute(
                "INSERT INTO offload_locks (name, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at"
                " WHERE offload_locks.owner = excluded.owner OR offload_locks.expires_at < ?",
                (name, owner, now + ttl, now),
            )
            return bool(c.execute("SELECT changes()").fetchone()[0])

        return self._write(take)

    def lock_release(self, name: str, owner: str) -> None:
        self._write(
            lambda c: c.execute(
                "DELETE FROM offload_locks WHERE name = ? AND owner = ?", (name, owner)
            )
        )

    # -- wake-ups ------------------------------------------------------------------------
    def waiter(self, queues: Sequence[str]) -> Waiter:
        return SocketWaiter(wake_dir(self.path), queues)

    # -- checks (tests and `offload doctor`) ----------------------------------------------
    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; "ok" when the file is sound."""
        return str(self._read("PRAGMA integrity_check")[0][0])


def _job_record(r: Sequence[Any], now: float) -> JobRow:
    state = JobState(r[3])
    if state is JobState.QUEUED and r[12] > now:
        state = JobState.SCHEDULED
    return JobRow(
        id=r[0], task=r[1], queue=r[2], state=state, priority=r[4], args=r[5], kwargs=r[6],
        attempt=r[7], max_attempts=r[8], errors=r[9], crashes=r[10], created_at=r[11],
        run_at=r[12], started_at=r[13], finished_at=r[14], leased_until=r[15], worker_id=r[16],
        timeout=r[17], options=r[18], unique_key=r[19],
        progress=Progress(r[20], r[21], r[22]), result=r[23], error=r[24], saved=r[25],
        cancel_requested=bool(r[26]),
    )  # fmt: skip


def _with_status(info: ProcessInfo, status: str) -> ProcessInfo:
    from dataclasses import replace

    return replace(info, status=status)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _split_sql(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _translate(exc: sqlite3.Error, path: str) -> StoreError:
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return StoreFull(f"{path}: {text}")
    if _is_locked(exc) if isinstance(exc, sqlite3.OperationalError) else False:
        return StoreUnavailable(f"{path}: still locked after the busy timeout ({text})")
    if "unable to open" in lowered or "readonly" in lowered or "disk i/o" in lowered:
        return StoreUnavailable(f"{path}: {text}")
    return StoreError(f"{path}: {text}")
