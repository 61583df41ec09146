"""SQLite connections: opening the file, transactions retried while it is locked, errors.

* The file is opened in WAL mode with a busy timeout and ``synchronous`` from the settings
  (NORMAL by default, FULL configurable).
* One connection per process and thread, opened lazily and never used across a fork:
  the pid is checked on every use. The first connection creates or upgrades the schema.
* Every write is one ``BEGIN IMMEDIATE`` transaction, retried with jittered backoff while
  the database is locked, so many processes can enqueue at once without "database is
  locked".
* sqlite3 errors become offload's: StoreFull, StoreUnavailable or StoreError, naming the
  file.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from offload.errors import ConfigError, StoreError, StoreFull, StoreUnavailable
from offload.settings import Settings
from offload.store.migrate import check_version, latest_version, migrations

T = TypeVar("T")

#: Migrations and the version check name the backend so.
BACKEND = "sqlite"


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


class Database:
    """The store's file: its connections, its schema and its transactions."""

    def __init__(self, settings: Settings, path: str) -> None:
        self.settings = settings
        self.path = path
        self._local = threading.local()
        self.migrated = False
        self._migrate_lock = threading.Lock()

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
            mode = self._wal(conn)
            if mode.lower() != "wal":
                raise StoreUnavailable(f"{self.path}: could not enable WAL (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.settings.synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
            # Group completion cascades through triggers (migration 0005).
            conn.execute("PRAGMA recursive_triggers = ON")
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc
        return conn

    def _wal(self, conn: sqlite3.Connection) -> str:
        """Put the file in WAL mode (a no-op once it is); the journal mode after. SQLite
        answers "database is locked" at once, without waiting out the busy timeout, while
        another connection opening the same new file holds it: retried here, as a write
        is, so that processes opening a new store together all get in."""
        deadline = time.monotonic() + self.settings.busy_timeout
        delay = 0.001
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if not is_locked(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)

    def conn(self) -> sqlite3.Connection:
        """This process's and thread's connection (the schema in place)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        # A connection is never used in a process other than the one that opened it:
        # after a fork the child opens its own (and never closes the parent's).
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn = conn
            local.pid = os.getpid()
            if not self.migrated:
                self._ensure_schema(conn)
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -- schema --------------------------------------------------------------------------
    def user_version(self) -> int:
        """The schema version in the file."""
        return int(self.conn().execute("PRAGMA user_version").fetchone()[0])

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        with self._migrate_lock:
            if self.migrated:
                return
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < latest_version(BACKEND):
                self._apply_migrations(conn)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            check_version(version, BACKEND, self.path)
            self.migrated = True

    def _apply_migrations(self, conn: sqlite3.Connection) -> None:
        def apply(c: sqlite3.Connection) -> None:
            current = c.execute("PRAGMA user_version").fetchone()[0]
            for migration in migrations(BACKEND):
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
                if is_locked(exc) and time.monotonic() < deadline:
                    time.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.1)
                    continue
                raise translate(exc, self.path) from exc
            except sqlite3.DatabaseError as exc:
                raise translate(exc, self.path) from exc

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one write transaction (retried while the file is locked)."""
        return self._with_retry(self.conn(), fn)

    def read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """The rows of one statement, outside any transaction."""
        try:
            return self.conn().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise translate(exc, self.path) from exc


def _split_sql(script: str) -> list[str]:
    """The statements of a migration; a trigger's body (``BEGIN ... END;``) stays whole."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    out: list[str] = []
    pending = ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip().rstrip(";"))
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending.strip().rstrip(";"))
    return out


def is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """offload's error for a sqlite3 error on the file at ``path``."""
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return StoreFull(f"{path}: {text}")
    if is_locked(exc) if isinstance(exc, sqlite3.OperationalError) else False:
        return StoreUnavailable(f"{path}: still locked after the busy timeout ({text})")
    if "unable to open" in lowered or "readonly" in lowered or "disk i/o" in lowered:
        return StoreUnavailable(f"{path}: {text}")
    return StoreError(f"{path}: {text}")
