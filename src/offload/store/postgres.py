"""The PostgreSQL store: many machines, one database.

* psycopg 3 with a small ``psycopg_pool.ConnectionPool`` per process (``pool_min`` to
  ``pool_max`` connections), opened on first use and opened again in a forked child (the
  pid is checked on every use; a child never touches its parent's connections).
* Every table lives in one schema (``settings.schema``, default ``offload``), always
  quoted as an identifier; every value is bound. Migrations run under an advisory lock,
  so two processes migrating at once apply each step once.
* Claims are one statement: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
  LOCKED LIMIT n) RETURNING ...``, so concurrent workers never wait on each other's rows.
* All times come from the server's clock (``now()`` of the transaction), stored as float
  seconds since the epoch, like the SQLite store.
* A committed enqueue sends ``NOTIFY`` (payload: queue names only). A :class:`ListenWaiter`
  holds one dedicated connection that ``LISTEN``\\s; if it drops, waiting falls back to
  the poll timeout and the connection is made again later, with jittered backoff.
* A lost server raises :class:`StoreUnavailable`; stale pooled connections are replaced
  and the operation retried when that is safe (never after a ``COMMIT`` was sent), so
  the same store object works again as soon as the server is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from offload.errors import ConfigError, SchemaError, StoreError, StoreFull, StoreUnavailable
from offload.settings import Settings, check_identifier
from offload.store.base import Store, Waiter
from offload.store.migrate import check_version, latest_version, migrations
from offload.store.rules import CLAIM_COLUMNS, PROCESS_COLUMNS
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
Conn = psycopg.Connection[tuple[Any, ...]]

# The pool logs every failed reconnection attempt. Where the application configured no
# logging, don't let Python's last-resort handler print them to stderr: StoreUnavailable
# already carries libpq's reason. Configured handlers still receive them.
if not logging.getLogger("psycopg.pool").handlers:
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

#: The transaction's timestamp on the server, as float epoch seconds.
_NOW = "date_part('epoch', now())"

_TABLES = ("jobs", "events", "messages", "processes", "locks", "schema_version")

_JOB_COLUMNS = (
    "id, task, queue,"
    " CASE WHEN state = 'queued' AND run_at > {now} THEN 'scheduled' ELSE state END,"
    " priority, args, kwargs, attempt, max_attempts, errors, crashes,"
    " created_at, run_at, started_at, finished_at, leased_until, worker_id, timeout, options,"
    " unique_key, progress_current, progress_total, progress_message, result, error, saved,"
    " cancel_requested"
)
# Due queued jobs, one ordered index scan per queue (LATERAL), merged: "queue = ANY(...)"
# would read and sort every due row of every queue on each claim. A queue's rows locked
# here but not among the first ``limit`` are released at commit.
_PICK_BY_QUEUE = (
    "SELECT j.id FROM unnest(%(queues)s::text[]) AS q(name) CROSS JOIN LATERAL"
    " (SELECT id, priority, run_at FROM {jobs} WHERE state = 'queued'"
    " AND queue = q.name AND run_at <= {now} AND task = ANY(%(tasks)s)"
    " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) j"
    " ORDER BY j.priority DESC, j.run_at, j.id LIMIT %(limit)s"
)
_FINISHED = "('succeeded', 'failed', 'cancelled', 'quarantined')"


def _claim_ctes(pick: str) -> str:
    """The claim as CTEs (``picked``, ``claimed``, its events), for ``WITH ...``."""
    return (
        f"picked AS MATERIALIZED ({pick}),"
        " claimed AS (UPDATE {jobs} j SET state = 'running', attempt = j.attempt + 1,"
        " worker_id = %(worker)s, leased_until = {now} + %(lease)s::float8,"
        " started_at = {now}, cancel_requested = false"
        " FROM picked WHERE j.id = picked.id AND j.state = 'queued'"
        " RETURNING j.id, j.task, j.queue, j.args, j.kwargs, j.attempt, j.max_attempts,"
        " j.errors, j.crashes, j.timeout, j.options, j.priority, j.run_at),"
        " claim_ev AS (INSERT INTO {events} (job_id, at, attempt, kind, worker_id)"
        " SELECT id, {now}, attempt, 'started', %(worker)s FROM claimed)"
    )


#: Runs that ended for good, each job once, as CTEs: ``o`` (the outcomes in order),
#: ``u`` (the fenced transitions that were accepted) and their events ("refused" if stale).
_OUTCOME_CTES = (
    "o AS (SELECT * FROM unnest(%(o_id)s::text[], %(o_attempt)s::int[], %(o_state)s::text[],"
    " %(o_result)s::text[], %(o_error)s::text[], %(o_errs)s::int[], %(o_crashes)s::int[],"
    " %(o_worker)s::text[], %(o_reason)s::text[], %(o_refusal)s::text[])"
    " WITH ORDINALITY AS o(id, attempt, state, result, error, errs, crashes, worker,"
    " reason, refusal, n)),"
    " u AS (UPDATE {jobs} j SET state = o.state, result = o.result, error = o.error,"
    " finished_at = {now}, errors = j.errors + o.errs, crashes = j.crashes + o.crashes,"
    " leased_until = NULL FROM o"
    " WHERE j.id = o.id AND j.attempt = o.attempt AND j.state = 'running'"
    " RETURNING j.id),"
    " outcome_ev AS (INSERT INTO {events} (job_id, at, attempt, kind, worker_id, message)"
    " SELECT o.id, {now}, o.attempt,"
    " CASE WHEN u.id IS NULL THEN 'refused' ELSE o.state END, o.worker,"
    " CASE WHEN u.id IS NULL THEN o.refusal ELSE o.reason END"
    " FROM o LEFT JOIN u ON u.id = o.id"
    " WHERE u.id IS NOT NULL OR EXISTS (SELECT 1 FROM {jobs} x WHERE x.id = o.id)"
    " ORDER BY o.n)"
)


def _outcome_params(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    return {
        "o_id": [o.job_id for o in outcomes],
        "o_attempt": [o.attempt for o in outcomes],
        "o_state": [o.state.value for o in outcomes],
        "o_result": [o.result for o in outcomes],
        "o_error": [o.error for o in outcomes],
        "o_errs": [
            1 if o.count_error and o.state is not JobState.SUCCEEDED else 0 for o in outcomes
        ],
        "o_crashes": [1 if o.crashed else 0 for o in outcomes],
        "o_worker": [o.worker_id for o in outcomes],
        "o_reason": [o.reason for o in outcomes],
        "o_refusal": [
            f"stale {o.state.value} outcome of attempt {o.attempt} refused" for o in outcomes
        ],
    }


def _batchable(outcomes: Sequence[Outcome]) -> bool:
    """Outcomes one statement can write: runs that ended for good, each job once."""
    return all(o.state is not JobState.QUEUED for o in outcomes) and len(
        {o.job_id for o in outcomes}
    ) == len(outcomes)


_ACTIVE = "('queued', 'running')"

#: NOTIFY payloads must stay under 8000 bytes; past this, an empty payload means "any".
_MAX_PAYLOAD = 4000
#: How long an operation waits for a connection before raising StoreUnavailable.
DEFAULT_CONNECT_TIMEOUT = 5.0


class PostgresStore(Store):
    """The store for ``postgresql://`` urls. See the module docstring."""

    def __init__(self, settings: Settings, *, connect_timeout: float | None = None) -> None:
        self.settings = settings
        self.url = settings.url
        self.schema = check_identifier("schema", settings.schema)
        #: Seconds an operation waits for a pooled connection (server down: then fails).
        self.connect_timeout = connect_timeout or DEFAULT_CONNECT_TIMEOUT
        try:
            params = conninfo_to_dict(settings.url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"url: not a valid PostgreSQL url ({exc})") from None
        self._where = _describe(params, self.schema)
        self._connect_kwargs: dict[str, Any] = {"application_name": "offload"}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = max(2, round(self.connect_timeout))
        for key, value in (("keepalives", 1), ("keepalives_idle", 30)):
            if key not in params:
                self._connect_kwargs[key] = value
        self.channel = f"offload_{self.schema}"
        self._names: dict[str, sql.Composable] = {
            name: sql.Identifier(self.schema, name) for name in _TABLES
        }
        self._names["schema"] = sql.Identifier(self.schema)
        self._names["now"] = sql.SQL(_NOW)
        self._queries: dict[str, sql.Composed] = {}
        self._lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._pid = -1
        self._abandoned: list[ConnectionPool[Conn]] = []
        self._checked = False
        self._dbname: str | None = None
        self._in_use = 0

    # -- connections -------------------------------------------------------------------
    def q(self, text: str) -> sql.Composed:
        """``text`` with ``{jobs}``, ``{events}``, ..., ``{schema}``, ``{now}`` filled in."""
        query = self._queries.get(text)
        if query is None:
            query = sql.SQL(text).format(**self._names)
            self._queries[text] = query
        return query

    def _get_pool(self) -> ConnectionPool[Conn]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is not None and self._pid != os.getpid():
                # Inherited over a fork: its sockets belong to the parent. Keep a reference
                # so it is never closed (or garbage-collected) here.
                self._abandoned.append(self._pool)
                self._pool = None
                self._in_use = 0
            if self._pool is None:
                self._pool = self._new_pool()
                self._pid = os.getpid()
            return self._pool

    def _new_pool(self) -> ConnectionPool[Conn]:
        def make() -> ConnectionPool[Conn]:
            return ConnectionPool(
                self.url,
                kwargs={"autocommit": True, **self._connect_kwargs},
                min_size=min(self.settings.pool_min, self.settings.pool_max),
                max_size=self.settings.pool_max,
                open=False,
                name=f"offload-{self.schema}",
                timeout=self.connect_timeout,
                reconnect_timeout=30.0,
                num_workers=2,
            )

        pool = make()
        if not pool.min_size:
            pool.open(wait=False)
            return pool
        # Wait for the first connection: a request made while it is still being opened
        # would grow the pool to a second connection at once.
        try:
            pool.open(wait=True, timeout=self._first_wait)
            return pool
        except PoolTimeout:  # the pool closed itself
            problem = self._diagnose()
            if problem is not None:
                raise StoreUnavailable(f"{self._where}: cannot connect ({problem})") from None
        pool = make()  # the server answers, just slowly
        pool.open(wait=False)
        return pool

    @property
    def _first_wait(self) -> float:
        return min(self.connect_timeout, 1.0)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None and self._pid == os.getpid():
                pool.close(timeout=1.0)
            elif pool is not None:
                self._abandoned.append(pool)  # the parent's, inherited over a fork
            self._checked = False

    def _getconn(self, pool: ConnectionPool[Conn]) -> Conn | None:
        """A connection from ``pool``, or None if the pool was replaced (call again).

        psycopg_pool reconnects in the background with exponential backoff, which can
        leave a pool waiting for seconds after the server is back. So when no connection
        comes within a second while none is in use (the pool is failing, not busy), ask
        the server directly: if it answers, start a fresh pool; if not, fail now with
        libpq's reason instead of waiting out the timeout.
        """
        try:
            return pool.getconn(timeout=self._first_wait)
        except PoolClosed:
            return None
        except PoolTimeout:
            pass
        if self._in_use > 0:  # busy: others hold connections and will give them back
            try:
                return pool.getconn(timeout=max(0.01, self.connect_timeout - self._first_wait))
            except PoolClosed:
                return None
            except PoolTimeout as exc:
                raise StoreUnavailable(
                    f"{self._where}: no pooled connection free within "
                    f"{self.connect_timeout:g} s (pool_max={self.settings.pool_max})"
                ) from exc
        problem = self._diagnose()
        if problem is not None:
            raise StoreUnavailable(f"{self._where}: cannot connect ({problem})")
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.close(timeout=1.0)
        return None

    def _run_pipelined(self, fn: Callable[[Conn], Callable[[], T]]) -> T:
        """Run ``fn`` in one transaction in pipeline mode: BEGIN, its statements and
        COMMIT travel together, one round trip. ``fn`` returns a function that reads the
        results once the transaction committed."""
        # _run calls what fn returns when ``pipeline`` is set, so its result is a T.
        return cast(T, self._run(fn, pipeline=True))

    def _run(
        self,
        fn: Callable[[Conn], T],
        *,
        write: bool = True,
        ensure: bool = True,
        pipeline: bool = False,
        single: bool = False,
    ) -> T:
        """Run ``fn`` on a pooled connection (in one transaction if ``write``).

        A connection found broken (server restarted since it was pooled) is discarded and
        the call retried on another, unless the failure came while committing: then
        nobody knows whether the transaction landed, and the caller is told so.
        """
        if ensure and not self._checked:
            self._ensure_schema()
        attempts = 0
        while True:
            pool = self._get_pool()
            conn = self._getconn(pool)
            if conn is None:
                attempts += 1
                if attempts > 3:
                    raise StoreUnavailable(f"{self._where}: the connection pool keeps failing")
                continue
            committing = False
            self._count(1)
            try:
                if single:
                    # One autocommit statement that writes: once sent, nobody knows
                    # whether it committed, so it is never retried.
                    committing = True
                    return fn(conn)
                if not write:
                    return fn(conn)
                if pipeline:
                    with conn.pipeline():
                        with conn.transaction():
                            read = fn(conn)
                            # Errors of pipelined statements surface at the sync, with
                            # the COMMIT: the same uncertainty as a commit.
                            committing = True
                    return read()  # type: ignore[operator,no-any-return]
                with conn.transaction():
                    out = fn(conn)
                    committing = True
                return out
            except psycopg.Error as exc:
                broken = conn.broken
                rolled_back = isinstance(exc, pg_errors.TransactionRollback) and not broken
                retry = (not committing or (single and rolled_back)) and (
                    (broken and attempts <= self.settings.pool_max)
                    or (rolled_back and attempts < 5)
                )
                if not retry:
                    if committing and broken:
                        raise StoreUnavailable(
                            f"{self._where}: connection lost while committing; the change "
                            f"may or may not have been applied ({_first_line(exc)})"
                        ) from exc
                    raise self._translate(exc) from exc
                attempts += 1
                if not broken:
                    time.sleep(random.uniform(0.001, 0.02) * attempts)
            finally:
                self._count(-1)
                pool.putconn(conn)  # a broken connection is discarded and replaced

    def _count(self, delta: int) -> None:
        with self._lock:
            self._in_use += delta

    def _diagnose(self) -> str | None:
        """Why connecting fails, in libpq's words (the pool only logs its attempts);
        None if the server answers."""
        try:
            conn = psycopg.connect(self.url, **{**self._connect_kwargs, "connect_timeout": 2})
        except psycopg.Error as exc:
            return _first_line(exc)
        conn.close()
        return None

    def _read(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return self._run(lambda c: c.execute(self.q(query), params).fetchall(), write=False)

    def _translate(self, exc: psycopg.Error) -> StoreError:
        text = _first_line(exc)
        if isinstance(exc, pg_errors.DiskFull):
            return StoreFull(f"{self._where}: {text}")
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
            return SchemaError(f"{self._where}: {text}; run `offload migrate`")
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"{self._where}: {text}")
        return StoreError(f"{self._where}: {text}")

    # -- schema --------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        """On first use: migrate if the schema is missing or older; refuse a newer one."""
        with self._schema_lock:
            if self._checked:
                return
            version = self._version()
            if version < latest_version("postgres"):
                version = self._migrate()
            check_version(version, "postgres", self._where)
            self._checked = True

    def _version(self) -> int:
        def read(c: Conn) -> int:
            self._dbname = c.info.dbname
            found = c.execute(
                "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s"
                " AND tablename = 'schema_version'",
                (self.schema,),
            ).fetchone()
            if found is None:
                return 0
            row = c.execute(self.q("SELECT coalesce(max(version), 0) FROM {schema_version}"))
            return int(row.fetchone()[0])  # type: ignore[index]

        return self._run(read, write=False, ensure=False)

    def _migrate(self) -> int:
        key = int.from_bytes(
            hashlib.sha256(f"offload.migrate:{self.schema}".encode()).digest()[:8],
            "big",
            signed=True,
        )

        def apply(c: Conn) -> int:
            self._dbname = c.info.dbname
            # Serialises concurrent migrations of this schema; released at commit.
            c.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            c.execute(self.q("CREATE SCHEMA IF NOT EXISTS {schema}"))
            c.execute(
                self.q(
                    "CREATE TABLE IF NOT EXISTS {schema_version} (version integer PRIMARY KEY,"
                    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            )
            row = c.execute(self.q("SELECT coalesce(max(version), 0) FROM {schema_version}"))
            current = int(row.fetchone()[0])  # type: ignore[index]
            if current > latest_version("postgres"):
                check_version(current, "postgres", self._where)
            for migration in migrations("postgres"):
                if migration.version <= current:
                    continue
                c.execute(sql.SQL("SET LOCAL search_path TO {}").format(self._names["schema"]))
                c.execute(sql.SQL(migration.sql))  # SET LOCAL ends with the transaction
                c.execute(
                    self.q("INSERT INTO {schema_version} (version, name) VALUES (%s, %s)"),
                    (migration.version, migration.name),
                )
                current = migration.version
            return current

        return self._run(apply, ensure=False)

    def migrate(self) -> int:
        with self._schema_lock:
            version = self._migrate()
            check_version(version, "postgres", self._where)
            self._checked = True
            return version

    def schema_check(self) -> None:
        check_version(self._version(), "postgres", self._where)

    def now(self) -> float:
        rows = self._read("SELECT date_part('epoch', clock_timestamp())")
        return float(rows[0][0])

    # -- jobs ------------------------------------------------------------------------------
    def job_insert_many(self, jobs: Sequence[NewJob], connection: Any = None) -> list[str]:
        if not jobs:
            return []
        payload = _payload(j.queue for j in jobs)
        if connection is None:
            return self._run(lambda c: self._insert(c, jobs, payload))
        if not self._checked:
            self._ensure_schema()  # the schema in place, the database name known
        conn = self._caller_connection(connection)
        try:
            if conn.autocommit and conn.info.transaction_status == _IDLE:
                # Not inside a transaction: make the batch one (committed here).
                with conn.transaction():
                    return self._insert(conn, jobs, payload)
            # The caller's transaction: visible (and NOTIFY sent) when the caller commits.
            return self._insert(conn, jobs, payload)
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

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

    def _insert(self, conn: Conn, jobs: Sequence[NewJob], payload: str) -> list[str]:
        # A cursor of our own: the caller's connection may have another row factory.
        c = conn.cursor(row_factory=tuple_row)
        plain = [j for j in jobs if j.unique_key is None]
        if plain:
            c.execute(
                self.q(
                    "INSERT INTO {jobs} (id, task, queue, state, priority, args, kwargs,"
                    " max_attempts, created_at, run_at, timeout, options, unique_key)"
                    " SELECT id, task, queue, 'queued', priority, args, kwargs, max_attempts,"
                    " {now}, coalesce(run_at, {now} + delay), timeout, options, NULL"
                    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[],"
                    " %s::text[], %s::int[], %s::float8[], %s::float8[], %s::float8[],"
                    " %s::text[]) AS t(id, task, queue, priority, args, kwargs, max_attempts,"
                    " run_at, delay, timeout, options)"
                ),
                [
                    [j.id for j in plain],
                    [j.task for j in plain],
                    [j.queue for j in plain],
                    [j.priority for j in plain],
                    [j.args for j in plain],
                    [j.kwargs for j in plain],
                    [j.max_attempts for j in plain],
                    [_float_or_none(j.run_at) for j in plain],
                    [float(j.delay) for j in plain],
                    [_float_or_none(j.timeout) for j in plain],
                    [j.options for j in plain],
                ],
            )
        existing: dict[str, str] = {}
        for j in jobs:
            if j.unique_key is not None:
                existing[j.id] = self._insert_unique(c, j)
        self._notify(c, payload)
        return [existing.get(j.id, j.id) if j.unique_key is not None else j.id for j in jobs]

    def _insert_unique(self, c: psycopg.Cursor[tuple[Any, ...]], j: NewJob) -> str:
        """Insert one job with a unique key; the id of the active job that has it."""
        query = self.q(
            "WITH ins AS (INSERT INTO {jobs} (id, task, queue, state, priority, args, kwargs,"
            " max_attempts, created_at, run_at, timeout, options, unique_key)"
            " VALUES (%(id)s, %(task)s, %(queue)s, 'queued', %(priority)s, %(args)s,"
            " %(kwargs)s, %(max_attempts)s, {now}, coalesce(%(run_at)s::float8, {now} +"
            " %(delay)s::float8), %(timeout)s::float8, %(options)s, %(key)s)"
            " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
            f" AND state IN {_ACTIVE} DO NOTHING RETURNING id)"
            " SELECT id FROM ins UNION ALL SELECT id FROM {jobs} WHERE unique_key = %(key)s"
            f" AND state IN {_ACTIVE} AND NOT EXISTS (SELECT 1 FROM ins)"
        )
        params = {
            "id": j.id, "task": j.task, "queue": j.queue, "priority": j.priority,
            "args": j.args, "kwargs": j.kwargs, "max_attempts": j.max_attempts,
            "run_at": j.run_at, "delay": float(j.delay), "timeout": j.timeout,
            "options": j.options, "key": j.unique_key,
        }  # fmt: skip
        # The conflicting job may finish between the insert and the select (then insert
        # again), or be committed after this statement's snapshot (then select again).
        for _ in range(20):
            row = c.execute(query, params).fetchone()
            if row is not None:
                return str(row[0])
        raise StoreError(f"{self._where}: unique key {j.unique_key!r} kept changing hands")

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
        if job_ids is not None and not list(job_ids)[:limit]:
            return []
        query, params = self._claim_query(worker_id, queues, tasks, limit, lease, job_ids)
        rows = self._run(lambda c: c.execute(query, params).fetchall())
        return [ClaimedJob(*r) for r in rows]

    def _claim_query(
        self,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
        job_ids: Sequence[str] | None = None,
    ) -> tuple[sql.Composed, dict[str, Any]]:
        if job_ids is not None:
            ids = list(job_ids)[:limit]
            pick = (
                "SELECT id FROM {jobs} WHERE id = ANY(%(ids)s) AND state = 'queued'"
                " AND run_at <= {now} AND queue = ANY(%(queues)s) AND task = ANY(%(tasks)s)"
                " ORDER BY id FOR UPDATE SKIP LOCKED"
            )
        else:
            ids = []
            pick = _PICK_BY_QUEUE
        # The picked ids are materialised once: as a plain "id IN (subquery)" the planner
        # may rescan the locking subquery per row, and each rescan skips the rows this very
        # statement just updated, claiming far more than the limit.
        query = self.q(
            f"WITH {_claim_ctes(pick)}"
            f" SELECT {CLAIM_COLUMNS} FROM claimed ORDER BY priority DESC, run_at, id"
        )
        params = {
            "worker": worker_id,
            "lease": float(lease),
            "queues": list(dict.fromkeys(queues)),
            "tasks": list(tasks),
            "limit": limit,
            "ids": ids,
        }
        return query, params

    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        if not runs:
            return RenewResult()
        query = self.q(
            "UPDATE {jobs} j SET leased_until = {now} + %s::float8"
            " FROM unnest(%s::text[], %s::int[]) AS r(id, attempt)"
            " WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = 'running'"
            " AND j.worker_id = %s RETURNING j.id, j.attempt, j.cancel_requested"
        )
        rows = self._run(
            lambda c: c.execute(
                query,
                (float(lease), [r[0] for r in runs], [r[1] for r in runs], worker_id),
            ).fetchall()
        )
        held = {(r[0], r[1]): bool(r[2]) for r in rows}
        lost = [job_id for job_id, attempt in runs if (job_id, attempt) not in held]
        cancel = [job_id for job_id, attempt in runs if held.get((job_id, attempt))]
        return RenewResult(lost, cancel)

    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        def rescue(c: Conn) -> list[Rescued]:
            rows = c.execute(
                self.q(
                    "SELECT id, attempt, crashes, worker_id FROM {jobs}"
                    " WHERE state = 'running' AND leased_until < {now}"
                    " ORDER BY id FOR UPDATE SKIP LOCKED"
                )
            ).fetchall()
            out = []
            for job_id, attempt, crashes, worker in rows:
                state = JobState.QUARANTINED if crashes + 1 >= crash_limit else JobState.QUEUED
                reason = f"lease expired (worker {worker} stopped heartbeating)"
                error = json.dumps({"type": "LeaseExpired", "message": reason, "traceback": ""})
                c.execute(
                    self.q(
                        "UPDATE {jobs} SET state = %(state)s, crashes = crashes + 1,"
                        " error = %(error)s, leased_until = NULL, worker_id = NULL,"
                        " run_at = least(run_at, {now}),"
                        " finished_at = CASE WHEN %(state)s = 'quarantined'"
                        " THEN {now} END"
                        " WHERE id = %(id)s AND attempt = %(attempt)s AND state = 'running'"
                    ),
                    {"state": state.value, "error": error, "id": job_id, "attempt": attempt},
                )
                kind = "quarantined" if state is JobState.QUARANTINED else "lease_expired"
                self._event(c, job_id, attempt, kind, worker, reason)
                out.append(Rescued(job_id, attempt, state))
            if any(r.state is JobState.QUEUED for r in out):
                self._notify(c, "")
            return out

        return self._run(rescue)

    def _event(
        self,
        c: Conn,
        job_id: str,
        attempt: int,
        kind: str,
        worker: str | None,
        message: str = "",
    ) -> None:
        c.execute(
            self.q(
                "INSERT INTO {events} (job_id, at, attempt, kind, worker_id, message)"
                " VALUES (%s, {now}, %s, %s, %s, %s)"
            ),
            (job_id, attempt, kind, worker, message),
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

        def record(c: Conn) -> Callable[[], list[bool]]:
            cursors = self._record(c, outcomes, progress, messages, saves)
            return lambda: _accepted(cursors)

        return self._run_pipelined(record)

    def job_write_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        go = claim.limit > 0 and bool(claim.queues) and bool(claim.tasks)
        query, params = self._claim_query(
            claim.worker_id, claim.queues, claim.tasks, claim.limit, claim.lease
        )
        if go and not (progress or messages or saves) and _batchable(outcomes):
            return self._record_and_claim_at_once(outcomes, params)

        def both(c: Conn) -> Callable[[], tuple[list[bool], list[ClaimedJob]]]:
            cursors = self._record(c, outcomes, progress, messages, saves)
            claimed = c.execute(query, params) if go else None
            return lambda: (
                _accepted(cursors),
                [ClaimedJob(*r) for r in claimed.fetchall()] if claimed is not None else [],
            )

        return self._run_pipelined(both)

    def _record_and_claim_at_once(
        self, outcomes: Sequence[Outcome], claim_params: dict[str, Any]
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """A worker's usual turn as ONE autocommit statement: one round trip, one commit.

        The outcomes touch only rows that are running and the claim only rows that are
        queued, so the two halves never meet in the statement's one snapshot.
        """
        pick = _PICK_BY_QUEUE
        query = self.q(
            f"WITH {_OUTCOME_CTES}, {_claim_ctes(pick)},"
            " acc AS (SELECT array_agg((u.id IS NOT NULL)::int ORDER BY o.n) AS a"
            " FROM o LEFT JOIN u ON u.id = o.id)"
            f" SELECT acc.a, c.* FROM acc LEFT JOIN (SELECT {CLAIM_COLUMNS}, run_at AS r"
            " FROM claimed) c ON true ORDER BY c.priority DESC, c.r, c.id"
        )
        params = {**claim_params, **_outcome_params(outcomes)}
        rows = self._run(lambda c: c.execute(query, params).fetchall(), single=True)
        flags = (rows[0][0] if rows else None) or []
        jobs = [ClaimedJob(*r[1:13]) for r in rows if r[1] is not None]
        return [f == 1 for f in flags], jobs

    def _record(
        self,
        c: Conn,
        outcomes: Sequence[Outcome],
        progress: Sequence[ProgressUpdate],
        messages: Sequence[MessageAdd],
        saves: Sequence[SaveValue],
    ) -> list[psycopg.Cursor[tuple[Any, ...]]]:
        """The statements of :meth:`job_write`, sent in the caller's pipelined
        transaction; the cursors of the outcomes (one row: 1 if accepted)."""
        for s in saves:  # rare: a read-modify-write keeps the client's JSON text
            row = c.execute(
                self.q(
                    "SELECT saved FROM {jobs} WHERE id = %s AND attempt = %s"
                    " AND state = 'running' FOR UPDATE"
                ),
                (s.job_id, s.attempt),
            ).fetchone()
            if row is not None:
                saved = json.loads(row[0])
                saved[s.key] = json.loads(s.value)
                c.execute(
                    self.q("UPDATE {jobs} SET saved = %s WHERE id = %s"),
                    (json.dumps(saved, separators=(",", ":")), s.job_id),
                )
        # Progress and messages first, since an outcome ends the run they are
        # fenced on.
        if progress:
            c.execute(
                self.q(
                    "UPDATE {jobs} j SET progress_current = u.current,"
                    " progress_total = u.total,"
                    " progress_message = coalesce(u.message, j.progress_message)"
                    " FROM (SELECT DISTINCT ON (id) * FROM unnest(%s::text[],"
                    " %s::int[], %s::float8[], %s::float8[], %s::text[])"
                    " WITH ORDINALITY AS t(id, attempt, current, total, message, n)"
                    " ORDER BY id, n DESC) u"
                    " WHERE j.id = u.id AND j.attempt = u.attempt"
                    " AND j.state = 'running'"
                ),
                (
                    [p.job_id for p in progress],
                    [p.attempt for p in progress],
                    [float(p.current) for p in progress],
                    [_float_or_none(p.total) for p in progress],
                    [p.message for p in progress],
                ),
            )
        if messages:
            c.execute(
                self.q(
                    "INSERT INTO {messages} (job_id, at, attempt, text)"
                    " SELECT m.id, {now}, m.attempt, m.text FROM unnest(%s::text[],"
                    " %s::int[], %s::text[]) WITH ORDINALITY AS m(id, attempt, text, n)"
                    " JOIN {jobs} j ON j.id = m.id AND j.attempt = m.attempt"
                    " AND j.state = 'running' ORDER BY m.n"
                ),
                (
                    [m.job_id for m in messages],
                    [m.attempt for m in messages],
                    [m.text for m in messages],
                ),
            )
        cursors = self._finish_all(c, outcomes)
        if any(o.state is JobState.QUEUED and o.delay <= 0 for o in outcomes):
            self._notify(c, "")  # a requeue to run now (a spurious wake-up is cheap)
        return cursors

    def _finish_all(
        self, c: Conn, outcomes: Sequence[Outcome]
    ) -> list[psycopg.Cursor[tuple[Any, ...]]]:
        """Outcomes, in order (each cursor gives one row per outcome, 1 if accepted): a
        worker's usual batch (runs that ended for good, each job
        once) in one statement, anything else one statement per outcome."""
        if len(outcomes) < 2 or not _batchable(outcomes):
            return [self._finish(c, o) for o in outcomes]
        query = self.q(
            f"WITH {_OUTCOME_CTES} SELECT (u.id IS NOT NULL)::int"
            " FROM o LEFT JOIN u ON u.id = o.id ORDER BY o.n"
        )
        return [c.execute(query, _outcome_params(outcomes))]

    def _finish(self, c: Conn, o: Outcome) -> psycopg.Cursor[tuple[Any, ...]]:
        """One statement: the fenced transition and its event ("refused" if stale)."""
        if o.state is JobState.QUEUED:
            # Run again at once (a crash, a requeue at shutdown) keeps the job's place in
            # line: it is not sent behind every job that became due while it ran.
            change = (
                "state = 'queued', run_at = CASE WHEN %(delay)s::float8 > 0"
                " THEN {now} + %(delay)s::float8 ELSE least(run_at, {now}) END,"
                " error = coalesce(%(error)s, error), worker_id = NULL"
            )
            kind = "retry" if o.count_error or o.crashed else "requeued"
        else:
            change = (
                "state = %(state)s, result = %(result)s, error = %(error)s, finished_at = {now}"
            )
            kind = o.state.value
        query = self.q(
            f"WITH u AS (UPDATE {{jobs}} SET {change}, errors = errors + %(errors)s,"
            " crashes = crashes + %(crashes)s, leased_until = NULL"
            " WHERE id = %(id)s AND attempt = %(attempt)s AND state = 'running' RETURNING id),"
            " ev AS (INSERT INTO {events} (job_id, at, attempt, kind, worker_id, message)"
            " SELECT %(id)s, {now}, %(attempt)s,"
            " CASE WHEN EXISTS (SELECT 1 FROM u) THEN %(kind)s ELSE 'refused' END,"
            " %(worker)s,"
            " CASE WHEN EXISTS (SELECT 1 FROM u) THEN %(reason)s ELSE %(refusal)s END"
            " WHERE EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM {jobs} WHERE id = %(id)s))"
            " SELECT count(*) FROM u"
        )
        params = {
            "state": o.state.value,
            "result": o.result,
            "error": o.error,
            "delay": float(o.delay),
            "errors": 1 if o.count_error and o.state is not JobState.SUCCEEDED else 0,
            "crashes": 1 if o.crashed else 0,
            "id": o.job_id,
            "attempt": o.attempt,
            "kind": kind,
            "worker": o.worker_id,
            "reason": o.reason,
            "refusal": f"stale {o.state.value} outcome of attempt {o.attempt} refused",
        }
        return c.execute(query, params)

    def job_get(self, job_id: str) -> JobRow | None:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM {{jobs}} WHERE id = %s", (job_id,))
        return _job_record(rows[0]) if rows else None

    def job_list(self, filter: JobFilter) -> list[JobRow]:
        where: list[str] = []
        params: list[Any] = []
        if filter.state is JobState.SCHEDULED:
            where.append("state = 'queued' AND run_at > {now}")
        elif filter.state is JobState.QUEUED:
            where.append("state = 'queued' AND run_at <= {now}")
        elif filter.state is not None:
            where.append("state = %s")
            params.append(JobState(filter.state).value)
        if filter.queue:
            where.append("queue = %s")
            params.append(filter.queue)
        if filter.task:
            where.append("task = %s")
            params.append(filter.task)
        if filter.before_id:
            where.append("id < %s")
            params.append(filter.before_id)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM {{jobs}} {clause} ORDER BY id DESC LIMIT %s",
            [*params, filter.limit],
        )
        return [_job_record(r) for r in rows]

    def job_events(self, job_id: str) -> list[JobEvent]:
        rows = self._read(
            "SELECT at, attempt, kind, worker_id, message FROM {events}"
            " WHERE job_id = %s ORDER BY seq",
            (job_id,),
        )
        return [JobEvent(*r) for r in rows]

    def job_messages(self, job_id: str, limit: int = 1000) -> list[JobMessage]:
        rows = self._read(
            "SELECT at, attempt, text FROM (SELECT seq, at, attempt, text FROM {messages}"
            " WHERE job_id = %s ORDER BY seq DESC LIMIT %s) m ORDER BY seq",
            (job_id, limit),
        )
        return [JobMessage(*r) for r in rows]

    def job_cancel(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        def cancel(c: Conn) -> dict[str, JobState]:
            out: dict[str, JobState] = {}
            rows = c.execute(
                self.q(
                    "SELECT id, state, attempt FROM {jobs} WHERE id = ANY(%s)"
                    " ORDER BY id FOR UPDATE"
                ),
                (list(job_ids),),
            ).fetchall()
            found = {r[0]: (JobState(r[1]), r[2]) for r in rows}
            for job_id in job_ids:
                if job_id not in found or job_id in out:
                    continue
                state, attempt = found[job_id]
                if state is JobState.QUEUED:
                    c.execute(
                        self.q(
                            "UPDATE {jobs} SET state = 'cancelled', finished_at = {now}"
                            " WHERE id = %s AND state = 'queued'"
                        ),
                        (job_id,),
                    )
                    self._event(c, job_id, attempt, "cancelled", None, "cancelled")
                    state = JobState.CANCELLED
                elif state is JobState.RUNNING:
                    c.execute(
                        self.q("UPDATE {jobs} SET cancel_requested = true WHERE id = %s"),
                        (job_id,),
                    )
                    self._event(c, job_id, attempt, "cancel_requested", None, "")
                out[job_id] = state
            return out

        return self._run(cancel)

    def job_retry(self, job_ids: Sequence[str]) -> list[str]:
        query = self.q(
            "UPDATE {jobs} SET state = 'queued', run_at = {now}, errors = 0, crashes = 0,"
            " error = NULL, result = NULL, finished_at = NULL, cancel_requested = false"
            f" WHERE id = %s AND state IN {_FINISHED} RETURNING attempt, queue"
        )

        def retry(c: Conn) -> tuple[list[str], set[str]]:
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
                self._notify(c, _payload(queues))
            return done, queues

        done, _ = self._run(retry)
        return done

    def job_delete(self, job_ids: Sequence[str]) -> list[str]:
        def delete(c: Conn) -> list[str]:
            rows = c.execute(
                self.q(
                    "WITH d AS (DELETE FROM {jobs} WHERE id = ANY(%s) AND state != 'running'"
                    " RETURNING id),"
                    " e AS (DELETE FROM {events} WHERE job_id IN (SELECT id FROM d)),"
                    " m AS (DELETE FROM {messages} WHERE job_id IN (SELECT id FROM d))"
                    " SELECT id FROM d"
                ),
                (list(job_ids),),
            ).fetchall()
            deleted = {r[0] for r in rows}
            return [j for j in dict.fromkeys(job_ids) if j in deleted]

        return self._run(delete)

    def job_counts(self) -> dict[tuple[str, str], int]:
        rows = self._read(
            "SELECT queue, CASE WHEN state = 'queued' AND run_at > {now} THEN 'scheduled'"
            " ELSE state END AS s, count(*) FROM {jobs} GROUP BY queue, s"
        )
        return {(q, s): int(n) for q, s, n in rows}

    def job_prune(self, *, older_than: float, states: Sequence[JobState]) -> int:
        finished = [JobState(s).value for s in states if JobState(s).finished]
        if not finished:
            return 0
        query = self.q(
            "WITH d AS (DELETE FROM {jobs} WHERE state = ANY(%s)"
            " AND finished_at < {now} - %s::float8 RETURNING id),"
            " e AS (DELETE FROM {events} WHERE job_id IN (SELECT id FROM d)),"
            " m AS (DELETE FROM {messages} WHERE job_id IN (SELECT id FROM d))"
            " SELECT count(*) FROM d"
        )
        rows = self._run(lambda c: c.execute(query, (finished, float(older_than))).fetchall())
        return int(rows[0][0])

    # -- processes -----------------------------------------------------------------------
    def process_heartbeat(self, processes: Sequence[ProcessInfo]) -> None:
        if not processes:
            return
        query = self.q(
            f"INSERT INTO {{processes}} ({PROCESS_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, {now}), {now}, NULL, %s, %s, %s,"
            " %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
            " served = excluded.served, failed = excluded.failed,"
            " current_job = excluded.current_job, rss = excluded.rss,"
            " peak_rss = greatest(processes.peak_rss, excluded.peak_rss),"
            " info = excluded.info, stopped_at = NULL"
        )
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
        query = self.q(
            "UPDATE {processes} SET stopped_at = {now}, current_job = NULL WHERE id = ANY(%s)"
        )
        self._run(lambda c: c.execute(query, (list(process_ids),)))

    def process_list(self, *, gone_after: float) -> list[ProcessInfo]:
        rows = self._read(
            f"SELECT {PROCESS_COLUMNS}, CASE WHEN stopped_at IS NOT NULL THEN 'stopped'"
            " WHEN {now} - heartbeat_at > %s::float8 THEN 'gone' ELSE 'running' END"
            " FROM {processes} ORDER BY started_at, id",
            (float(gone_after),),
        )
        return [replace(ProcessInfo(*r[:-1]), status=r[-1]) for r in rows]

    def process_prune(self, *, older_than: float) -> int:
        query = self.q(
            "DELETE FROM {processes} WHERE coalesce(stopped_at, heartbeat_at) < {now} - %s::float8"
        )
        return self._run(lambda c: c.execute(query, (float(older_than),)).rowcount)

    # -- locks ---------------------------------------------------------------------------
    def lock_acquire(self, name: str, owner: str, ttl: float) -> bool:
        query = self.q(
            "INSERT INTO {locks} (name, owner, expires_at) VALUES (%s, %s, {now} + %s::float8)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
            " expires_at = excluded.expires_at"
            " WHERE locks.owner = excluded.owner OR locks.expires_at < {now}"
            " RETURNING 1"
        )
        rows = self._run(lambda c: c.execute(query, (name, owner, float(ttl))).fetchall())
        return bool(rows)

    def lock_release(self, name: str, owner: str) -> None:
        query = self.q("DELETE FROM {locks} WHERE name = %s AND owner = %s")
        self._run(lambda c: c.execute(query, (name, owner)))

    # -- wake-ups ------------------------------------------------------------------------
    def waiter(self, queues: Sequence[str]) -> Waiter:
        return ListenWaiter(self.url, self.channel, queues, self._connect_kwargs)

    def _notify(self, c: Conn | psycopg.Cursor[tuple[Any, ...]], payload: str) -> None:
        """Wake idle workers when this transaction commits (empty payload: any queue)."""
        c.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))


class ListenWaiter(Waiter):
    """Blocks on ``LISTEN`` on a dedicated connection (never one of the pool's).

    When that connection is lost, :meth:`wait` sleeps out its timeout (the worker polls)
    and tries to connect again later, backing off with jitter. After a reconnection it
    reports a wake-up, since notifications sent meanwhile were lost.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        queues: Sequence[str],
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.channel = channel
        self.queues = set(queues)
        self._kwargs = {**(connect_kwargs or {}), "connect_timeout": 2, "autocommit": True}
        self._conn: Conn | None = None
        self._pid = os.getpid()
        self._abandoned: list[Conn] = []
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._closed = False
        self._connect()

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is up (as far as this process knows)."""
        return self._conn is not None and not self._conn.closed

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection (for tests and diagnostics)."""
        return self._conn.info.backend_pid if self._conn is not None else None

    def _connect(self) -> bool:
        try:
            conn: Conn = psycopg.connect(self.url, **self._kwargs)
        except psycopg.Error:
            self._schedule_retry()
            return False
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._schedule_retry()
            return False
        self._conn = conn
        self._backoff = 0.0
        return True

    def _schedule_retry(self) -> None:
        self._backoff = min(30.0, max(0.25, self._backoff * 2))
        self._next_attempt = time.monotonic() + self._backoff * random.uniform(0.5, 1.5)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._schedule_retry()

    def selectable(self) -> int | None:
        """The LISTEN connection's socket while connected (in the process that opened
        it): a notification arriving makes it readable."""
        conn = self._conn
        if conn is None or conn.closed or self._pid != os.getpid():
            return None
        try:
            return conn.fileno()
        except psycopg.Error:
            return None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        if self._pid != os.getpid():
            # Inherited over a fork: the socket belongs to the parent. Never close it here.
            if self._conn is not None:
                self._abandoned.append(self._conn)
            self._conn = None
            self._pid = os.getpid()
            self._next_attempt = 0.0
        if self._conn is None:
            if not self._closed and time.monotonic() >= self._next_attempt and self._connect():
                return True  # notifications sent while disconnected are lost: look now
            _sleep_until(deadline)
            return False
        try:
            while True:  # at least one look, so wait(0) still reads what has arrived
                remaining = max(0.0, deadline - time.monotonic())
                for note in self._conn.notifies(timeout=remaining):
                    if not note.payload or self.queues.intersection(note.payload.split(",")):
                        return True
                if time.monotonic() >= deadline:
                    return False
        except psycopg.Error:
            self._drop()
            _sleep_until(deadline)
            return False

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                conn.close()


_IDLE = psycopg.pq.TransactionStatus.IDLE


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _payload(queues: Iterable[str]) -> str:
    text = ",".join(sorted(set(queues)))
    return text if len(text.encode()) <= _MAX_PAYLOAD else ""


def _accepted(cursors: Sequence[psycopg.Cursor[tuple[Any, ...]]]) -> list[bool]:
    """Outcome cursors read in order: one row per outcome, 1 where it was accepted."""
    return [row[0] == 1 for cur in cursors for row in cur.fetchall()]


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(params: dict[str, Any], schema: str) -> str:
    """Where the store is, for messages: never the password."""
    user = params.get("user") or ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or user or "(default database)"
    who = f"{user}@" if user else ""
    return f"postgresql://{who}{host}:{port}/{dbname} (schema {schema})"


def _job_record(r: Sequence[Any]) -> JobRow:
    return JobRow(
        id=r[0], task=r[1], queue=r[2], state=JobState(r[3]), priority=r[4], args=r[5],
        kwargs=r[6], attempt=r[7], max_attempts=r[8], errors=r[9], crashes=r[10],
        created_at=r[11], run_at=r[12], started_at=r[13], finished_at=r[14],
        leased_until=r[15], worker_id=r[16], timeout=r[17], options=r[18], unique_key=r[19],
        progress=Progress(r[20], r[21], r[22]), result=r[23], error=r[24], saved=r[25],
        cancel_requested=bool(r[26]),
    )  # fmt: skip
