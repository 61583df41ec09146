"""A worker, drain or migrate against a schema newer than this code fails at once with a
message that says so, on both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from offload.store.migrate import latest_version
from offload.store.sqlite import database_path
from tests.fixtures import processes


def bump_schema(url: str) -> None:
    """Record schema version 99, as a newer offload's migration would."""
    if url.startswith("sqlite"):
        with sqlite3.connect(database_path(url)) as conn:
            conn.execute("PRAGMA user_version = 99")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO offload.schema_version (version, name) VALUES (99, '0099_future.sql')"
        )


@pytest.mark.parametrize("command", ["worker", "drain", "migrate"])
def test_a_newer_schema_is_refused_with_a_clear_message(
    command: str, store_url: str, tmp_path: Path
) -> None:
    # Given a store migrated by this code, then upgraded by a newer one.
    ok = processes.run("migrate", store_url, tmp_path / "ledger.db", timeout=30)
    assert ok.returncode == 0, ok.stderr
    bump_schema(store_url)

    # When this code starts against it.
    out = processes.run(command, store_url, tmp_path / "ledger.db", timeout=30)

    # Then it exits 1 at once, naming both versions and what to do.
    assert out.returncode == 1, out.stdout + out.stderr
    expected = latest_version("sqlite" if store_url.startswith("sqlite") else "postgres")
    assert f"schema version 99 is newer than this offload understands ({expected})" in out.stderr
    assert "upgrade offload" in out.stderr
    assert "Traceback" not in out.stderr
