"""PostgreSQL-only behaviour: transactional enqueue, outages, LISTEN, schemas, pools."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from offload.errors import ConfigError, SchemaError, StoreUnavailable
from offload.ids import uuid7
from offload.settings import Settings
from offload.store import open_store
from offload.store.migrate import latest_version
from offload.store.postgres import ListenWaiter, PostgresStore
from offload.testing import wait_for
from offload.types import JobFilter, JobState, NewJob, Outcome
from tests.fixtures.postgres import PostgresServer, store_settings


def job(**fields: object) -> NewJob:
    return NewJob(id=uuid7(), task="t", **fields)  # type: ignore[arg-type]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(store_settings(postgres_url))
    yield store
    store.close()


def offload_connections(url: str) -> int:
    """Connections the server holds for offload (application_name 'offload')."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'offload'"
            " AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


# -- transactional enqueue ---------------------------------------------------------------


def test_enqueue_on_the_callers_transaction_is_invisible_until_commit(
    pg: PostgresStore, postgres_url: str
) -> None:
    pg.migrate()
    waiter = pg.waiter(["default"])
    try:
        with psycopg.connect(postgres_url) as conn:  # not autocommit: a transaction
            conn.execute("SELECT 1")
            new = job()
            assert pg.job_insert_many([new], connection=conn) == [new.id]
            assert pg.job_get(new.id) is None
            assert waiter.wait(0.2) is False  # NOTIFY waits for the commit too
            conn.commit()
        assert pg.job_get(new.id) is not None
        assert waiter.wait(2.0) is True
    finally:
        waiter.close()


def test_enqueue_on_the_callers_transaction_is_gone_after_rollback(
    pg: PostgresStore, postgres_url: str
) -> None:
    pg.migrate()
    with psycopg.connect(postgres_url) as conn:
        new = job()
        pg.job_insert_many([new], connection=conn)
        conn.rollback()
    assert pg.job_get(new.id) is None
    assert pg.job_counts() == {}


def test_enqueue_inside_an_autocommit_connections_transaction_block(
    pg: PostgresStore, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(ZeroDivisionError), conn.transaction():
            gone = job()
            pg.job_insert_many([gone], connection=conn)
            raise ZeroDivisionError
        with conn.transaction():
            kept = job()
            pg.job_insert_many([kept], connection=conn)
            assert pg.job_get(kept.id) is None
    assert pg.job_get(gone.id) is None
    assert pg.job_get(kept.id) is not None


def test_enqueue_on_an_idle_autocommit_connection_commits_at_once(
    pg: PostgresStore, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        a, b = job(), job()
        pg.job_insert_many([a, b], connection=conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert pg.job_get(a.id) is not None and pg.job_get(b.id) is not None


def test_enqueue_works_on_a_connection_with_another_row_factory(
    pg: PostgresStore, postgres_url: str
) -> None:
    pg.migrate()
    with psycopg.connect(postgres_url, row_factory=dict_row) as conn:
        (existing,) = pg.job_insert_many([job(unique_key="k")], connection=conn)
        assert pg.job_insert_many([job(unique_key="k")], connection=conn) == [existing]
    assert pg.job_get(existing) is not None


def test_enqueue_refuses_a_connection_to_another_database(
    pg: PostgresStore, postgres_server: PostgresServer
) -> None:
    pg.migrate()
    with psycopg.connect(postgres_server.url("postgres")) as conn:
        with pytest.raises(ConfigError, match="not on the store's database"):
            pg.job_insert_many([job()], connection=conn)


def test_enqueue_refuses_something_that_is_not_a_psycopg_connection(pg: PostgresStore) -> None:
    with pytest.raises(ConfigError, match="psycopg"):
        pg.job_insert_many([job()], connection=object())


# -- outages -----------------------------------------------------------------------------


def test_store_survives_a_server_crash_and_restart(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    store = PostgresStore(store_settings(postgres_url), connect_timeout=1.0)
    try:
        (job_id,) = store.job_insert_many([job()])
        waiter = store.waiter(["default"])
        postgres_server.stop("immediate")
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
                store.job_get(job_id)
            assert time.monotonic() - start < 5
            with pytest.raises(StoreUnavailable):
                store.job_insert_many([job()])
            assert waiter.wait(0.2) is False  # lost LISTEN: waiting falls back to polling
        finally:
            postgres_server.start()
        # The same store object, never reopened: works again once the pool reconnects.
        start = time.monotonic()
        record = wait_for(lambda: _try_get(store, job_id), timeout=20, what="reconnect")
        assert time.monotonic() - start < 5
        assert record.state is JobState.QUEUED  # committed before the crash: still there
        (fresh,) = store.job_insert_many([job()])
        assert store.job_get(fresh) is not None
        # The waiter reconnects too, and hears enqueues again.
        wait_for(lambda: waiter.wait(0.3) or _connected(waiter), timeout=20, what="LISTEN")
        store.job_insert_many([job()])
        assert waiter.wait(5.0) is True
        waiter.close()
    finally:
        store.close()


def _try_get(store: PostgresStore, job_id: str) -> object:
    try:
        return store.job_get(job_id)
    except StoreUnavailable:
        return None


def _connected(waiter: object) -> bool:
    assert isinstance(waiter, ListenWaiter)
    return waiter.connected


def test_unreachable_server_raises_store_unavailable_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    store = PostgresStore(
        Settings(url=f"postgresql://nobody:secret@127.0.0.1:{port}/x"), connect_timeout=0.5
    )
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            store.job_counts()
        assert time.monotonic() - start < 3
        assert f"127.0.0.1:{port}" in str(info.value)
        assert "refused" in str(info.value)  # libpq's reason, not just "timed out"
        assert "secret" not in str(info.value)
    finally:
        store.close()


def test_killed_listen_connection_costs_only_the_poll_interval(
    pg: PostgresStore, postgres_server: PostgresServer
) -> None:
    waiter = pg.waiter(["default"])
    assert isinstance(waiter, ListenWaiter)
    try:
        pid = waiter.backend_pid
        with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        pg.job_insert_many([job()])  # its NOTIFY is lost with the connection
        start = time.monotonic()
        assert waiter.wait(0.5) is False
        assert time.monotonic() - start < 1.5
        # Reconnected at the next wait, which reports a wake-up (notifications were lost).
        wait_for(lambda: waiter.wait(0.3) and waiter.connected, timeout=10, what="reconnect")
        assert waiter.backend_pid != pid
        pg.job_insert_many([job()])
        start = time.monotonic()
        assert waiter.wait(5.0) is True
        assert time.monotonic() - start < 1.0
    finally:
        waiter.close()


# -- schemas -----------------------------------------------------------------------------


def test_two_schemas_in_one_database_hold_separate_jobs(postgres_url: str) -> None:
    a = open_store(store_settings(postgres_url))
    b = open_store(store_settings(postgres_url, schema="tenant_b"))
    try:
        assert b.migrate() == latest_version("postgres")
        waiter_b = b.waiter(["default"])
        (in_a,) = a.job_insert_many([job()])
        assert waiter_b.wait(0.2) is False  # each schema has its own channel
        (in_b,) = b.job_insert_many([job()])
        assert waiter_b.wait(2.0) is True
        waiter_b.close()
        assert a.job_get(in_b) is None and b.job_get(in_a) is None
        assert a.job_counts() == b.job_counts() == {("default", "queued"): 1}
    finally:
        a.close()
        b.close()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'"
            " ORDER BY 1"
        ).fetchall()
    assert [r[0] for r in rows] == ["offload", "tenant_b"]


@pytest.mark.parametrize("name", ["Offload", "bad-name", 'x"; DROP TABLE jobs; --', "", "1abc"])
def test_bad_schema_name_raises_config_error(postgres_url: str, name: str) -> None:
    with pytest.raises(ConfigError, match="schema"):
        open_store(store_settings(postgres_url, schema=name))


def _migrate_in_process(url: str) -> int:
    store = open_store(Settings(url=url))
    try:
        return store.migrate()
    finally:
        store.close()


def test_concurrent_migrations_apply_each_step_once(postgres_server: PostgresServer) -> None:
    name = f"offload_empty_{os.getpid()}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    url = postgres_server.url(name)
    try:
        with multiprocessing.get_context("spawn").Pool(3) as pool:
            versions = pool.map(_migrate_in_process, [url] * 3)
        assert versions == [latest_version("postgres")] * 3
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version FROM offload.schema_version").fetchall()
        assert [r[0] for r in rows] == [v.version for v in _migrations()]
    finally:
        postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def _migrations() -> list[object]:
    from offload.store.migrate import Migration, migrations

    found: list[Migration] = migrations("postgres")
    return list(found)


def test_schema_check_on_an_unmigrated_database_asks_for_migrate(
    postgres_server: PostgresServer,
) -> None:
    name = f"offload_bare_{os.getpid()}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    store = PostgresStore(Settings(url=postgres_server.url(name)))
    try:
        with pytest.raises(SchemaError, match="offload migrate"):
            store.schema_check()
        store.job_counts()  # first use migrates
        store.schema_check()
    finally:
        store.close()
        postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


# -- connections and processes -----------------------------------------------------------


def test_a_single_threaded_process_holds_one_connection_and_one_for_listen(
    postgres_url: str,
) -> None:
    # What a worker supervisor holds with the default pool_min=1 (see the how-to).
    store = PostgresStore(store_settings(postgres_url))
    try:
        for _ in range(30):
            store.job_insert_many([job()])
            store.job_counts()
        assert offload_connections(postgres_url) == 1
        waiter = store.waiter(["default"])
        assert offload_connections(postgres_url) == 2
        waiter.close()
        store.close()
        store.job_counts()  # reopened after close (as around every fork): still one
        wait_for(lambda: offload_connections(postgres_url) == 1, timeout=5, what="one")
    finally:
        store.close()


def test_a_store_opens_at_most_pool_max_connections_plus_one_per_waiter(
    postgres_url: str,
) -> None:
    store = PostgresStore(store_settings(postgres_url, pool_min=1, pool_max=3))
    try:
        assert offload_connections(postgres_url) == 0  # nothing before first use
        store.job_counts()
        barrier = threading.Barrier(8)

        def busy() -> None:
            barrier.wait()
            for _ in range(20):
                store.job_insert_many([job()])

        threads = [threading.Thread(target=busy) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 1 <= offload_connections(postgres_url) <= 3
        waiter = store.waiter(["default"])
        assert 2 <= offload_connections(postgres_url) <= 4
        waiter.close()
        assert store.job_counts() == {("default", "queued"): 160}
    finally:
        store.close()
    wait_for(lambda: offload_connections(postgres_url) == 0, timeout=5, what="pool closed")


def test_a_forked_child_gets_its_own_connections(pg: PostgresStore) -> None:
    (before,) = pg.job_insert_many([job()])  # the parent's pool is open
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking with threads (the pool's) running: this test
        # forks exactly that way on purpose, to show the child leaves them alone.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: must not touch the parent's sockets
        code = 1
        try:
            pg.job_insert_many([job(queue="child")])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connections still work.
    assert pg.job_get(before) is not None
    assert pg.job_counts() == {("default", "queued"): 1, ("child", "queued"): 1}


def test_claims_use_the_database_clock(pg: PostgresStore, postgres_url: str) -> None:
    (job_id,) = pg.job_insert_many([job()])
    pg.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=30)
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            "SELECT leased_until - date_part('epoch', now()) FROM offload.jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None and 25 < row[0] <= 30


def test_a_statement_held_up_by_a_table_lock_ends_in_store_unavailable(
    postgres_url: str,
) -> None:
    store = PostgresStore(store_settings(postgres_url, statement_timeout=0.5))
    kept = job()
    store.job_insert_many([kept])
    with psycopg.connect(postgres_url, autocommit=False) as holder:
        holder.execute("LOCK TABLE offload.jobs IN ACCESS EXCLUSIVE MODE")
        try:
            with pytest.raises(StoreUnavailable) as info:
                store.job_insert_many([job()])
            assert "statement_timeout is 0.5 s" in str(info.value), str(info.value)
            assert "canceling statement" in str(info.value), str(info.value)
        finally:
            holder.rollback()
    try:
        # The same store works once the lock is gone; nothing stored was touched.
        later = job()
        store.job_insert_many([later])
        assert {r.id for r in store.job_list(JobFilter(limit=10))} == {kept.id, later.id}
    finally:
        store.close()


def test_migrations_are_exempt_from_the_statement_timeout(postgres_url: str) -> None:
    # One millisecond would cancel the migration's advisory lock wait and DDL otherwise.
    store = PostgresStore(store_settings(postgres_url, statement_timeout=0.001, schema="tight"))
    try:
        assert store.migrate() == latest_version("postgres")
    finally:
        store.close()


def test_the_connection_diagnosis_honours_the_urls_connect_timeout() -> None:
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    store = PostgresStore(
        Settings(url=f"postgresql://u@127.0.0.1:{port}/x?connect_timeout=1"), connect_timeout=1
    )
    try:
        assert store.db.diagnose_timeout == "1"
        with pytest.raises(StoreUnavailable) as info:
            store.job_counts()
        assert "timeout" in str(info.value), str(info.value)
    finally:
        store.close()
        silent.close()


# -- kept counts (migration 0007) -------------------------------------------------------------
# Every test on postgres_url ends with the fixture's check that the counts job_counts reads
# equal a GROUP BY over the jobs; these test what that check cannot see.
def _changes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM offload.count_changes").fetchone()
    assert row is not None
    return int(row[0])


def test_sql_of_ones_own_is_counted(pg: PostgresStore, postgres_url: str) -> None:
    pg.job_insert_many([job(), job(), job(queue="mail")])
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE offload.jobs SET state = 'failed' WHERE queue = 'mail'")
        conn.execute(
            "UPDATE offload.jobs SET queue = 'moved', state = 'succeeded'"
            " WHERE id IN (SELECT id FROM offload.jobs WHERE queue = 'default' LIMIT 1)"
        )
        conn.execute("INSERT INTO offload.jobs (id, task, queue, state, args, kwargs, created_at,"
                     " run_at) VALUES ('x', 't', 'mail', 'running', '[]', '{}', 0, 0)")  # fmt: skip
    assert pg.job_counts() == {
        ("default", "queued"): 1,
        ("moved", "succeeded"): 1,
        ("mail", "failed"): 1,
        ("mail", "running"): 1,
    }
    with psycopg.connect(postgres_url) as conn:
        conn.execute("DELETE FROM offload.jobs WHERE queue = 'mail'")
    assert pg.job_counts() == {("default", "queued"): 1, ("moved", "succeeded"): 1}
    with psycopg.connect(postgres_url) as conn:
        conn.execute("TRUNCATE offload.jobs")
    assert pg.job_counts() == {}


def test_changes_fold_into_the_counts(pg: PostgresStore, postgres_url: str) -> None:
    # Given 880 statements that changed counts (each folding with a chance of 1 in 50).
    for _ in range(80):
        pg.job_insert_many([job(queue=q) for q in ("a", "b") for _ in range(5)])
        claimed = pg.job_claim(worker_id="w", queues=["a", "b"], tasks=["t"], limit=10, lease=5)
        for c in claimed:
            pg.job_write(outcomes=[Outcome(c.id, c.attempt, JobState.SUCCEEDED, "1")])
    # Then some folded into counts (empty at first)...
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*), sum(n) FROM offload.counts").fetchone()
    assert row is not None and row[0] > 0 and row[1] > 0
    assert _changes(postgres_url) < 80 * 22  # the rows those statements appended
    # ...and a fold by hand leaves no change, and the same counts.
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SELECT offload.counts_fold(true)")
    assert _changes(postgres_url) == 0
    assert pg.job_counts() == {("a", "succeeded"): 400, ("b", "succeeded"): 400}


def test_a_writer_never_waits_for_a_fold(pg: PostgresStore, postgres_url: str) -> None:
    pg.job_insert_many([job() for _ in range(160)])
    # Given a transaction that folded and holds the fold's lock (and its counts rows).
    with psycopg.connect(postgres_url) as holder:
        holder.execute("UPDATE offload.jobs SET state = 'failed' WHERE id IN"
                       " (SELECT id FROM offload.jobs LIMIT 1)")  # fmt: skip
        assert holder.execute("SELECT offload.counts_fold(true)").fetchone() == (True,)
        # When other writers move jobs meanwhile (300 statements, each trying to fold
        # with a chance of 1 in 50), with a statement timeout that turns a wait into an
        # error.
        quick = PostgresStore(store_settings(postgres_url, statement_timeout=2.0))
        try:
            for _ in range(150):
                (c,) = quick.job_claim(worker_id="w", queues=["default"], tasks=["t"],
                                       limit=1, lease=5)  # fmt: skip
                quick.job_write(outcomes=[Outcome(c.id, c.attempt, JobState.SUCCEEDED, "1")])
        finally:
            quick.close()
        # Then none waited, and a reader sees what they did, not what the holder did.
        assert pg.job_counts() == {("default", "queued"): 10, ("default", "succeeded"): 150}
    assert pg.job_counts() == {
        ("default", "queued"): 9, ("default", "succeeded"): 150, ("default", "failed"): 1,
    }  # fmt: skip


def _move_jobs(url: str, worker: str, rounds: int) -> int:
    store = PostgresStore(store_settings(url))
    moved = 0
    try:
        for _ in range(rounds):
            store.job_insert_many([job(queue=q) for q in ("a", "b", "c")])
            got = store.job_claim(worker_id=worker, queues=["a", "b", "c"], tasks=["t"],
                                  limit=3, lease=5)  # fmt: skip
            states = [JobState.SUCCEEDED, JobState.FAILED, JobState.QUEUED]
            store.job_write(
                outcomes=[Outcome(c.id, c.attempt, states[i % 3], "1") for i, c in enumerate(got)]
            )
            moved += len(got)
    finally:
        store.close()
    return moved


def test_processes_moving_jobs_at_once_keep_the_counts_exact(
    pg: PostgresStore, postgres_url: str
) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        moved = pool.starmap(_move_jobs, [(postgres_url, f"w{i}", 150) for i in range(4)])
    assert sum(moved) > 0
    counts = pg.job_counts()
    assert sum(counts.values()) == 4 * 150 * 3
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        kept = conn.execute("SELECT sum(n) FROM offload.counts").fetchone()
    assert kept is not None and kept[0] and int(kept[0]) > 0  # folds happened
    # (the fixture then checks each count against the jobs)


@pytest.mark.counts_unchecked
def test_job_recount_rebuilds_counts_of_writes_made_with_triggers_off(
    pg: PostgresStore, postgres_url: str
) -> None:
    pg.job_insert_many([job(), job(queue="mail")])
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET session_replication_role = replica")  # no triggers fire
        conn.execute("UPDATE offload.jobs SET state = 'failed' WHERE queue = 'mail'")
    assert pg.job_counts() == {("default", "queued"): 1}

    pg.job_recount()

    assert pg.job_counts() == {("default", "queued"): 1, ("mail", "failed"): 1}
    assert _changes(postgres_url) == 0


def test_upgrading_a_store_counts_the_jobs_it_holds(postgres_server: PostgresServer) -> None:
    from offload.store.migrate import migrations

    # Given a database at schema version 6 (before the kept counts) holding jobs.
    name = f"offload_v6_{os.getpid()}"
    postgres_server.admin(f"CREATE DATABASE {name}")
    url = postgres_server.url(name)
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE SCHEMA offload")
            conn.execute("SET search_path TO offload")
            conn.execute(
                "CREATE TABLE schema_version (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in migrations("postgres"):
                if migration.version <= 6:
                    conn.execute(migration.sql.encode())
                    conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))  # fmt: skip
            conn.execute(
                "INSERT INTO jobs (id, task, queue, state, args, kwargs, created_at, run_at)"
                " SELECT 'j' || i, 't', CASE WHEN i < 4 THEN 'mail' ELSE 'default' END,"
                " CASE WHEN i < 3 THEN 'succeeded' WHEN i = 3 THEN 'failed' ELSE 'queued' END,"
                " '[]', '{}', 0, 0 FROM generate_series(0, 4) AS i"
            )
        # When this offload opens it.
        store = PostgresStore(store_settings(url))
        try:
            counts = store.job_counts()
            (c,) = store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1,
                                   lease=5)  # fmt: skip
            store.job_write(outcomes=[Outcome(c.id, c.attempt, JobState.FAILED, error="{}")])
            after = store.job_counts()
        finally:
            store.close()
        # Then the counts it keeps start from the jobs already there.
        assert counts == {("mail", "succeeded"): 3, ("mail", "failed"): 1, ("default", "queued"): 1}
        assert after == {("mail", "succeeded"): 3, ("mail", "failed"): 1, ("default", "failed"): 1}
    finally:
        postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


def test_the_store_reads_committed_whatever_the_database_default(postgres_url: str) -> None:
    # A stricter default would give a limited claim an old snapshot of what runs under its
    # key, and a fold of the kept counts a serialization error.
    dbname = postgres_url.rpartition("/")[2]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {dbname} SET default_transaction_isolation = 'serializable'")
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
    store = PostgresStore(store_settings(postgres_url))
    try:
        got = store.db.run(lambda c: c.execute("SHOW transaction_isolation").fetchone())
        assert got == ("read committed",)
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # a new session: the default
            assert conn.execute("SHOW transaction_isolation").fetchone() == ("serializable",)
    finally:
        store.close()
