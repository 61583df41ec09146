"""The SQLite store: an embedded file, no server.

* WAL journal, ``synchronous=NORMAL`` by default (FULL configurable), a busy timeout and
  ``BEGIN IMMEDIATE`` for every write, retried with jittered backoff while the database is
  locked, so many processes can enqueue at once without "database is locked".
* One connection per process and thread, opened lazily and never used across a fork:
  the pid is checked on every use.
* A free-space watermark: an insert is refused with StoreFull while the disk has less
  than ``min_free_bytes`` free, so completions of accepted jobs still have room.
* Idle workers on the machine are woken through Unix datagram sockets (``wake.py``).

The parts: ``connection.py`` (opening, transactions, retries, errors), ``queries.py``
(the SQL), ``jobs.py``, ``runs.py`` and ``processes.py`` (the methods of the contract, by
what they act on), ``store.py`` (the class), ``wake.py`` and ``migrations/``.
"""

from __future__ import annotations

from offload.store.sqlite.connection import database_path
from offload.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "database_path"]
