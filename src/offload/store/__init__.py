"""Stores: one contract (``base.Store``), two backends picked by URL scheme.

``base.py`` is the contract, ``rules.py`` what both backends must agree on, ``migrate.py``
finds and checks the numbered migrations, and ``sqlite/`` and ``postgres/`` are the two
backends (each a package: connections, SQL, the contract's methods, wake-ups, migrations).
"""

from __future__ import annotations

from offload.settings import Settings
from offload.store.base import Store
from offload.types import JobState

__all__ = ["JobState", "Store", "open_store"]


def open_store(settings: Settings) -> Store:
    """The store for ``settings.url``: SQLite for ``sqlite://``, PostgreSQL otherwise.

    Opening does no I/O; the first operation connects (and migrates if needed).
    """
    if settings.scheme == "sqlite":
        # Each backend loads when chosen: PostgreSQL's needs psycopg, an optional extra.
        from offload.store.sqlite import SQLiteStore

        return SQLiteStore(settings)
    import importlib

    # Imported only when used, so the SQLite default never loads the PostgreSQL driver.
    module = importlib.import_module("offload.store.postgres")
    store: Store = module.PostgresStore(settings)
    return store
