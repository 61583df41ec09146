"""The PostgreSQL store: many machines, one database.

* psycopg 3 with a small connection pool per process, opened on first use and opened
  again in a forked child (``pool.py``).
* Every table lives in one schema (``settings.schema``, default ``offload``), always
  quoted as an identifier; every value is bound (``queries.py``). Migrations run under an
  advisory lock, so two processes migrating at once apply each step once (``core.py``).
* Claims are one statement: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
  LOCKED LIMIT n) RETURNING ...``, so concurrent workers never wait on each other's rows;
  outcomes are written by one statement, which also claims in a worker's usual turn
  (``runs.py``).
* All times come from the server's clock (``now()`` of the transaction), stored as float
  seconds since the epoch, like the SQLite store.
* A committed enqueue sends ``NOTIFY`` (payload: queue names only). A :class:`ListenWaiter`
  holds one dedicated connection that ``LISTEN``\\s; if it drops, waiting falls back to
  the poll timeout and the connection is made again later, with jittered backoff
  (``listen.py``).
* A lost server raises :class:`StoreUnavailable`; stale pooled connections are replaced
  and the operation retried when that is safe (never after a ``COMMIT`` was sent), so
  the same store object works again as soon as the server is back (``pool.py``).

The parts: ``pool.py``, ``listen.py``, ``queries.py``, ``core.py`` (what every part uses:
running statements, the schema, NOTIFY), ``jobs.py``, ``runs.py`` and ``processes.py`` (the
methods of the contract, by what they act on), ``store.py`` (the class), ``migrations/``.
"""

from __future__ import annotations

from offload.store.postgres.listen import ListenWaiter
from offload.store.postgres.pool import DEFAULT_CONNECT_TIMEOUT
from offload.store.postgres.store import PostgresStore

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "ListenWaiter", "PostgresStore"]
