"""SQLite-only behaviour: transactional enqueue, many writers, the free-space watermark."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload.errors import ConfigError, StoreFull
from offload.ids import uuid7
from offload.store.sqlite import SQLiteStore
from offload.types import JobState, NewJob, Outcome
from tests.fixtures.postgres import store_settings


def job(**fields: object) -> NewJob:
    return NewJob(id=uuid7(), task="t", **fields)  # type: ignore[arg-type]


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[SQLiteStore]:
    store = SQLiteStore(store_settings(sqlite_url))
    yield store
    store.close()


def test_enqueue_on_the_callers_transaction_is_invisible_until_commit(
    lite: SQLiteStore,
) -> None:
    lite.migrate()
    conn = sqlite3.connect(lite.path)
    try:
        new = job()
        assert lite.job_insert_many([new], connection=conn) == [new.id]
        assert conn.in_transaction
        assert lite.job_get(new.id) is None
        conn.commit()
        assert lite.job_get(new.id) is not None
    finally:
        conn.close()


def test_enqueue_on_the_callers_transaction_is_gone_after_rollback(lite: SQLiteStore) -> None:
    lite.migrate()
    conn = sqlite3.connect(lite.path)
    try:
        new = job()
        lite.job_insert_many([new], connection=conn)
        conn.rollback()
    finally:
        conn.close()
    assert lite.job_get(new.id) is None
    assert lite.job_counts() == {}


def test_enqueue_on_a_fresh_store_creates_the_schema_first(lite: SQLiteStore) -> None:
    conn = sqlite3.connect(lite.path)
    try:
        new = job()
        lite.job_insert_many([new], connection=conn)
        conn.commit()
    finally:
        conn.close()
    assert lite.job_get(new.id) is not None


def test_enqueue_refuses_a_connection_on_another_file(lite: SQLiteStore, tmp_path: Path) -> None:
    lite.migrate()
    conn = sqlite3.connect(tmp_path / "other.db")
    try:
        with pytest.raises(ConfigError, match="not on the store's file"):
            lite.job_insert_many([job()], connection=conn)
    finally:
        conn.close()


def test_enqueue_refuses_an_in_memory_connection(lite: SQLiteStore) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        with pytest.raises(ConfigError):
            lite.job_insert_many([job()], connection=conn)
    finally:
        conn.close()


def test_enqueue_refuses_something_that_is_not_a_sqlite3_connection(lite: SQLiteStore) -> None:
    with pytest.raises(ConfigError, match=r"sqlite3\.Connection"):
        lite.job_insert_many([job()], connection=object())


def _enqueue_many_times(url: str, n: int) -> int:
    store = SQLiteStore(store_settings(url))
    try:
        for _ in range(n):
            store.job_insert_many([NewJob(id=uuid7(), task="t")])
        return n
    finally:
        store.close()


def test_many_processes_enqueueing_at_once_never_see_database_is_locked(
    lite: SQLiteStore,
) -> None:
    lite.migrate()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        done = pool.starmap(_enqueue_many_times, [(lite.url, 300)] * 4)
    assert done == [300] * 4
    assert lite.job_counts() == {("default", "queued"): 1200}
    assert lite.integrity_check() == "ok"


def test_free_space_watermark_refuses_new_jobs_naming_the_path(sqlite_url: str) -> None:
    full = SQLiteStore(store_settings(sqlite_url, min_free_bytes=1 << 62))
    try:
        with pytest.raises(StoreFull) as info:
            full.job_insert_many([job()])
        assert full.path in str(info.value)
        assert full.job_counts() == {}
    finally:
        full.close()


def test_outcomes_still_land_past_the_free_space_watermark(sqlite_url: str) -> None:
    roomy = SQLiteStore(store_settings(sqlite_url))
    full = SQLiteStore(store_settings(sqlite_url, min_free_bytes=1 << 62))
    try:
        (job_id,) = roomy.job_insert_many([job()])
        (c,) = full.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=5)
        assert full.job_write(outcomes=[Outcome(c.id, c.attempt, JobState.SUCCEEDED, "1")]) == [
            True
        ]
        record = roomy.job_get(job_id)
        assert record is not None and record.state is JobState.SUCCEEDED
    finally:
        roomy.close()
        full.close()


def test_a_rescue_is_not_stopped_by_a_crash_count_written_by_hand(lite: SQLiteStore) -> None:
    bad, good = job(max_attempts=3), job(max_attempts=3)
    lite.job_insert_many([bad, good])
    lite.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=2, lease=0.05)
    conn = sqlite3.connect(lite.path)
    with conn:
        conn.execute("UPDATE offload_jobs SET crashes = 'many' WHERE id = ?", (bad.id,))
        conn.execute("UPDATE offload_jobs SET leased_until = 0, lease_mono = 0")
    conn.close()
    rescued = lite.lease_rescue_expired(crash_limit=3)
    assert sorted(r.job_id for r in rescued) == sorted([bad.id, good.id])
    assert all(r.state is JobState.QUEUED for r in rescued)


def test_fire_rows_written_by_hand_are_left_out(lite: SQLiteStore) -> None:
    from offload.types import ScheduleFire

    lite.schedule_fire([ScheduleFire("a", 1_800_000_000, job())])
    conn = sqlite3.connect(lite.path)
    with conn:
        # Text sorts above every integer in SQLite: it must not pass for the latest fire.
        conn.execute("INSERT INTO offload_schedule_fires VALUES ('a', 'soon', 'x', 1.0)")
        conn.execute("INSERT INTO offload_schedule_fires VALUES ('b', 'soon', 'x', 1.0)")
        conn.execute("INSERT INTO offload_schedule_fires VALUES (X'07', 1800000000, 'x', 1.0)")
        conn.execute("INSERT INTO offload_schedule_fires VALUES ('c', 1800000000, X'00', 1.0)")
    conn.close()

    last = lite.schedule_last_fires()

    assert list(last) == ["a"] and last["a"].fire_at == 1_800_000_000


def test_job_counts_follow_an_enqueue_on_the_callers_connection(lite: SQLiteStore) -> None:
    lite.migrate()
    conn = sqlite3.connect(lite.path)
    try:
        lite.job_insert_many([job(queue="own")], connection=conn)
        conn.rollback()
        assert lite.job_counts() == {}
        lite.job_insert_many([job(queue="own")], connection=conn)
        conn.commit()
        assert lite.job_counts() == {("own", "queued"): 1}
    finally:
        conn.close()


def _first_write(url: str, start: Any, seen: Any) -> None:
    start.wait(timeout=60)
    store = SQLiteStore(store_settings(url))
    try:
        store.job_insert_many([NewJob(id=uuid7(), task="t")])
        seen.put("ok")
    except Exception as exc:  # reported, so the test shows what each process saw
        seen.put(repr(exc))
    finally:
        store.close()


def test_processes_opening_a_new_file_together_all_get_in(tmp_path: Path) -> None:
    # Given eight processes that open the same file, not there yet, at the same moment
    # (a first deployment starting its workers), ten times over.
    ctx = multiprocessing.get_context("fork")
    for round in range(10):
        url = f"sqlite:///{tmp_path / f'new-{round}.db'}"
        start, seen = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_first_write, args=(url, start, seen)) for _ in range(8)]
        for p in procs:
            p.start()
        answers = [seen.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        # Then none is turned away with "database is locked": each waits its turn.
        assert answers == ["ok"] * 8, answers
        check = SQLiteStore(store_settings(url))
        assert check.job_counts() == {("default", "queued"): 8}
        check.close()


@pytest.mark.counts_unchecked
def test_counts_written_by_hand_are_rebuilt_by_job_recount(lite: SQLiteStore) -> None:
    lite.job_insert_many([job(), job(queue="mail")])
    conn = sqlite3.connect(lite.path)
    with conn:
        conn.execute("UPDATE offload_jobs SET state = 'failed' WHERE queue = 'mail'")
        conn.execute("DELETE FROM offload_jobs WHERE queue = 'default'")
    conn.close()
    # (queued jobs are counted from the claim index; finished ones from the kept counts)
    assert lite.job_counts() == {}

    lite.job_recount()

    assert lite.job_counts() == {("mail", "failed"): 1}


def test_upgrading_a_store_counts_the_jobs_it_holds(tmp_path: Path) -> None:
    from offload.store.migrate import migrations
    from offload.store.sqlite.connection import _split_sql

    # Given a file at schema version 6 (before the kept counts) holding jobs.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in migrations("sqlite"):
        if migration.version <= 6:
            for statement in _split_sql(migration.sql):
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 6")
    conn.executemany(
        "INSERT INTO offload_jobs (id, task, queue, state, args, kwargs, created_at, run_at)"
        " VALUES (?, 't', ?, ?, '[]', '{}', 0, 0)",
        [(uuid7(), "mail", "succeeded") for _ in range(3)]
        + [(uuid7(), "mail", "failed"), (uuid7(), "default", "queued")],
    )
    conn.close()

    # When this offload opens it.
    store = SQLiteStore(store_settings(f"sqlite:///{path}"))
    try:
        counts = store.job_counts()
        (c,) = store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=5)
        store.job_write(outcomes=[Outcome(c.id, c.attempt, JobState.FAILED, error="{}")])
        after = store.job_counts()
    finally:
        store.close()

    # Then the counts it keeps start from the jobs already there.
    assert counts == {("mail", "succeeded"): 3, ("mail", "failed"): 1, ("default", "queued"): 1}
    assert after == {("mail", "succeeded"): 3, ("mail", "failed"): 1, ("default", "failed"): 1}


def test_an_outcome_written_by_another_process_is_counted_on_its_queue(
    lite: SQLiteStore, sqlite_url: str
) -> None:
    # Given jobs on two queues claimed through one store...
    lite.job_insert_many([job(queue="mail"), job(queue="video")])
    claimed = lite.job_claim(worker_id="w", queues=["mail", "video"], tasks=["t"], limit=2, lease=5)
    # ...and their outcomes written through another, which did not claim them.
    other = SQLiteStore(store_settings(sqlite_url))
    try:
        other.job_write(
            outcomes=[Outcome(c.id, c.attempt, JobState.SUCCEEDED, "1") for c in claimed]
        )
    finally:
        other.close()

    # Then each is counted on its own queue (the sqlite_url fixture checks the rest).
    assert lite.job_counts() == {("mail", "succeeded"): 1, ("video", "succeeded"): 1}
