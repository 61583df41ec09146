"""Schema: ``migrate`` and ``schema_check``."""

from __future__ import annotations

import sqlite3

import pytest

from offload.errors import SchemaError
from offload.store import Store, open_store
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import add


def _set_schema_version(store: Store, version: int) -> None:
    if store.url.startswith("sqlite"):
        conn = sqlite3.connect(store.url[len("sqlite:///") :])
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
    else:
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO offload.schema_version (version, name) VALUES (%s, 'future')",
                (version,),
            )


def test_migrate_is_idempotent_and_reports_the_version(store: Store) -> None:
    assert store.migrate() == store.migrate() >= 1
    store.schema_check()


def test_schema_check_refuses_a_newer_schema(store: Store) -> None:
    add(store)
    _set_schema_version(store, 999)
    with pytest.raises(SchemaError, match="newer"):
        store.schema_check()
    fresh = open_store(store_settings(store.url))
    try:
        with pytest.raises(SchemaError, match="upgrade offload"):
            fresh.job_counts()
    finally:
        fresh.close()
