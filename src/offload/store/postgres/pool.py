"""The PostgreSQL store's connections: the pool, running statements on it, and outages.

* psycopg 3 with a small ``psycopg_pool.ConnectionPool`` per process (``pool_min`` to
  ``pool_max`` connections), opened on first use and opened again in a forked child (the
  pid is checked on every use; a child never touches its parent's connections).
* A lost server raises :class:`StoreUnavailable`; stale pooled connections are replaced
  and the operation retried when that is safe (never after a ``COMMIT`` was sent), so
  the same store object works again as soon as the server is back.
* psycopg errors become offload's (StoreFull, SchemaError, StoreUnavailable, StoreError),
  naming the server and schema, never the password.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from offload.errors import ConfigError, SchemaError, StoreError, StoreFull, StoreUnavailable
from offload.settings import Settings

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

# The pool logs every failed reconnection attempt. Where the application configured no
# logging, don't let Python's last-resort handler print them to stderr: StoreUnavailable
# already carries libpq's reason. Configured handlers still receive them.
if not logging.getLogger("psycopg.pool").handlers:
    logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

#: How long an operation waits for a connection before raising StoreUnavailable.
DEFAULT_CONNECT_TIMEOUT = 5.0


class Database:
    """One process's pool of connections to the store's database."""

    def __init__(self, settings: Settings, schema: str, connect_timeout: float) -> None:
        self.settings = settings
        self.url = settings.url
        self.schema = schema
        #: Seconds an operation waits for a pooled connection (server down: then fails).
        self.connect_timeout = connect_timeout
        try:
            params = conninfo_to_dict(settings.url)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"url: not a valid PostgreSQL url ({exc})") from None
        #: Where the store is, for messages.
        self.where = describe(params, schema)
        #: Connection options of the pool's connections (and of LISTEN connections).
        self.connect_kwargs: dict[str, Any] = {"application_name": "offload"}
        if "connect_timeout" not in params:
            self.connect_kwargs["connect_timeout"] = max(2, round(self.connect_timeout))
        for key, value in (("keepalives", 1), ("keepalives_idle", 30)):
            if key not in params:
                self.connect_kwargs[key] = value
        # Appended to the url's own ``options`` so they are kept (the last -c wins).
        options = server_options(settings.statement_timeout)
        self.connect_kwargs["options"] = f"{params.get('options', '')} {options}".strip()
        #: How long the diagnosis of a failing pool waits: the url's connect_timeout if
        #: it has one, else 2 s.
        self.diagnose_timeout: Any = params.get("connect_timeout", 2)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Conn] | None = None
        self._pid = -1
        self._abandoned: list[ConnectionPool[Conn]] = []
        self._in_use = 0

    # -- the pool ------------------------------------------------------------------------
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
                kwargs={"autocommit": True, **self.connect_kwargs},
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
                raise StoreUnavailable(f"{self.where}: cannot connect ({problem})") from None
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
                    f"{self.where}: no pooled connection free within "
                    f"{self.connect_timeout:g} s (pool_max={self.settings.pool_max})"
                ) from exc
        problem = self._diagnose()
        if problem is not None:
            raise StoreUnavailable(f"{self.where}: cannot connect ({problem})")
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.close(timeout=1.0)
        return None

    def _count(self, delta: int) -> None:
        with self._lock:
            self._in_use += delta

    def _diagnose(self) -> str | None:
        """Why connecting fails, in libpq's words (the pool only logs its attempts);
        None if the server answers."""
        try:
            conn = psycopg.connect(
                self.url, **{**self.connect_kwargs, "connect_timeout": self.diagnose_timeout}
            )
        except psycopg.Error as exc:
            return first_line(exc)
        conn.close()
        return None

    # -- running statements -----------------------------------------------------------------
    def run_pipelined(self, fn: Callable[[Conn], Callable[[], T]]) -> T:
        """Run ``fn`` in one transaction in pipeline mode: BEGIN, its statements and
        COMMIT travel together, one round trip. ``fn`` returns a function that reads the
        results once the transaction committed."""
        # run calls what fn returns when ``pipeline`` is set, so its result is a T.
        return cast(T, self.run(fn, pipeline=True))

    def run(
        self,
        fn: Callable[[Conn], T],
        *,
        write: bool = True,
        pipeline: bool = False,
        single: bool = False,
    ) -> T:
        """Run ``fn`` on a pooled connection (in one transaction if ``write``).

        ``single``: ``fn`` runs one statement that writes, in autocommit.

        A connection found broken (server restarted since it was pooled) is discarded and
        the call retried on another, unless the failure came while committing: then
        nobody knows whether the transaction landed, and the caller is told so.
        """
        attempts = 0
        while True:
            pool = self._get_pool()
            conn = self._getconn(pool)
            if conn is None:
                attempts += 1
                if attempts > 3:
                    raise StoreUnavailable(f"{self.where}: the connection pool keeps failing")
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
                            f"{self.where}: connection lost while committing; the change "
                            f"may or may not have been applied ({first_line(exc)})"
                        ) from exc
                    raise self.translate(exc) from exc
                attempts += 1
                if not broken:
                    time.sleep(random.uniform(0.001, 0.02) * attempts)
            finally:
                self._count(-1)
                pool.putconn(conn)  # a broken connection is discarded and replaced

    def translate(self, exc: psycopg.Error) -> StoreError:
        """offload's error for a psycopg error on this database."""
        text = first_line(exc)
        if isinstance(exc, pg_errors.DiskFull):
            return StoreFull(f"{self.where}: {text}")
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
            return SchemaError(f"{self.where}: {text}; run `offload migrate`")
        if isinstance(exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable):
            limit = self.settings.statement_timeout
            return StoreUnavailable(
                f"{self.where}: {text} (statement_timeout is {limit:g} s; a long-held lock "
                f"on offload's tables, or an overloaded server)"
            )
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(f"{self.where}: {text}")
        return StoreError(f"{self.where}: {text}")


#: The store's statements are written for read committed (a fresh snapshot per statement:
#: a limited claim counts running jobs after taking its key's lock, a trigger folds kept
#: counts), whatever the server's or the role's default_transaction_isolation says.
ISOLATION = "-c default_transaction_isolation=read\\ committed"


def server_options(statement_timeout: float) -> str:
    """libpq ``options`` for the store's connections: read committed, and bounds on every
    statement and lock wait unless ``statement_timeout`` is 0 or infinite."""
    if not 0 < statement_timeout < math.inf:
        return ISOLATION
    ms = max(1, round(statement_timeout * 1000))
    return f"{ISOLATION} -c statement_timeout={ms} -c lock_timeout={ms}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe(params: dict[str, Any], schema: str) -> str:
    """Where the store is, for messages: never the password."""
    user = params.get("user") or ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or user or "(default database)"
    who = f"{user}@" if user else ""
    return f"postgresql://{who}{host}:{port}/{dbname} (schema {schema})"
