"""What every part of the PostgreSQL store uses: its settings and pool, statements run
with the schema checked (and migrated) on first use, the server's clock, NOTIFY, and
migrations under an advisory lock, so two processes migrating at once apply each step
once."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from offload.settings import Settings, check_identifier
from offload.store.base import Store
from offload.store.migrate import check_version, latest_version, migrations
from offload.store.postgres import queries as Q
from offload.store.postgres.listen import channel
from offload.store.postgres.pool import DEFAULT_CONNECT_TIMEOUT, Conn, Database

T = TypeVar("T")

#: Migrations and the version check name the backend so.
BACKEND = "postgres"


class PostgresCore(Store):
    """The state and helpers the parts of :class:`PostgresStore` share."""

    def __init__(self, settings: Settings, *, connect_timeout: float | None = None) -> None:
        self.settings = settings
        self.url = settings.url
        self.schema = check_identifier("schema", settings.schema)
        #: Seconds an operation waits for a pooled connection (server down: then fails).
        self.connect_timeout = connect_timeout or DEFAULT_CONNECT_TIMEOUT
        self.db = Database(settings, self.schema, self.connect_timeout)
        self._where = self.db.where
        self.location = self.db.where
        self.channel = channel(self.schema)
        #: Statements of ``queries.py`` for this schema.
        self.q = Q.Composer(self.schema)
        self._schema_lock = threading.Lock()
        self._checked = False
        self._dbname: str | None = None

    # -- running statements -----------------------------------------------------------------
    def _run(
        self,
        fn: Callable[[Conn], T],
        *,
        write: bool = True,
        ensure: bool = True,
        single: bool = False,
    ) -> T:
        """``fn`` on a pooled connection (see :meth:`Database.run`), the schema checked
        first unless ``ensure`` is False."""
        if ensure and not self._checked:
            self._ensure_schema()
        return self.db.run(fn, write=write, single=single)

    def _run_pipelined(self, fn: Callable[[Conn], Callable[[], T]]) -> T:
        """``fn`` in one pipelined transaction (see :meth:`Database.run_pipelined`)."""
        if not self._checked:
            self._ensure_schema()
        return self.db.run_pipelined(fn)

    def _read(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return self._run(lambda c: c.execute(self.q(query), params).fetchall(), write=False)

    def _notify(self, c: Conn | psycopg.Cursor[tuple[Any, ...]], payload: str) -> None:
        """Wake idle workers when this transaction commits (empty payload: any queue)."""
        c.execute(Q.NOTIFY, (self.channel, payload))

    def _event(
        self,
        c: Conn,
        job_id: str,
        attempt: int,
        kind: str,
        worker: str | None,
        message: str = "",
    ) -> None:
        """One line of a job's history, in the caller's transaction."""
        c.execute(self.q(Q.INSERT_EVENT), (job_id, attempt, kind, worker, message))

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()
        self._checked = False

    def now(self) -> float:
        rows = self._read(Q.SERVER_CLOCK)
        return float(rows[0][0])

    def migrate(self) -> int:
        with self._schema_lock:
            version = self._migrate()
            check_version(version, BACKEND, self._where)
            self._checked = True
            return version

    def schema_check(self) -> None:
        check_version(self._version(), BACKEND, self._where)

    # -- schema --------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        """On first use: migrate if the schema is missing or older; refuse a newer one."""
        with self._schema_lock:
            if self._checked:
                return
            version = self._version()
            if version < latest_version(BACKEND):
                version = self._migrate()
            check_version(version, BACKEND, self._where)
            self._checked = True

    def _version(self) -> int:
        def read(c: Conn) -> int:
            self._dbname = c.info.dbname
            found = c.execute(Q.HAS_VERSION_TABLE, (self.schema,)).fetchone()
            if found is None:
                return 0
            row = c.execute(self.q(Q.SCHEMA_VERSION))
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
            # A migration may rewrite a big table: exempt from statement_timeout.
            for statement in Q.NO_STATEMENT_TIMEOUT:
                c.execute(statement)
            # Serialises concurrent migrations of this schema; released at commit.
            c.execute(Q.MIGRATION_LOCK, (key,))
            c.execute(self.q(Q.CREATE_SCHEMA))
            c.execute(self.q(Q.CREATE_VERSION_TABLE))
            row = c.execute(self.q(Q.SCHEMA_VERSION))
            current = int(row.fetchone()[0])  # type: ignore[index]
            if current > latest_version(BACKEND):
                check_version(current, BACKEND, self._where)
            for migration in migrations(BACKEND):
                if migration.version <= current:
                    continue
                c.execute(self.q(Q.SEARCH_PATH))
                c.execute(sql.SQL(migration.sql))  # SET LOCAL ends with the transaction
                c.execute(self.q(Q.RECORD_VERSION), (migration.version, migration.name))
                current = migration.version
            return current

        return self._run(apply, ensure=False)
