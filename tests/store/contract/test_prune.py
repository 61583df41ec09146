"""Pruning by retention: finished jobs past the retention of their state (the settings',
or their task's own, stored in their options) go with their events and messages, in
batches; nothing unfinished is ever touched, and unreadable options never stop a prune."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest

from offload.retention import MAX_RETENTION, PruneResult, RetentionPolicy
from offload.settings import Settings
from offload.store import Store
from offload.store.sqlite import SQLiteStore
from offload.tasks import TaskOptions
from offload.types import MessageAdd, Outcome
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import Q, add, claim, run_one, state

DAY = 86400.0
#: The defaults: succeeded and cancelled 7 days, failed and quarantined 30.
DEFAULT = RetentionPolicy()


def sql(store: Store, statement: str, *params: Any) -> None:
    """Run one statement on the store's tables directly (``{jobs}`` is the jobs table)."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute(statement.format(jobs="offload_jobs"), params)
        finally:
            conn.close()
        return
    with psycopg.connect(store.url, autocommit=True) as pg:
        pg.execute(statement.replace("?", "%s").format(jobs="offload.jobs").encode(), params)


def age(store: Store, job_id: str, seconds: float) -> None:
    """Move the job's ``finished_at`` this many seconds into the past."""
    sql(store, "UPDATE {jobs} SET finished_at = finished_at - ? WHERE id = ?", seconds, job_id)


def retention(value: Any) -> str:
    """The options a task declaring ``retention=value`` stores on its jobs."""
    return TaskOptions(name="t", retention=value).encoded


def finished(
    store: Store, end: Q = Q.SUCCEEDED, *, ago: float = 0.0, messages: int = 2, **fields: Any
) -> str:
    """A job that ran, logged ``messages`` lines and ended ``end``, ``ago`` seconds ago."""
    if end is Q.CANCELLED:
        (job_id,) = add(store, **fields)
        store.job_cancel([job_id])
    else:
        c = run_one(store, **fields)
        job_id = c.id
        lines = [MessageAdd(c.id, c.attempt, f"line {n}") for n in range(messages)]
        crashed = end is Q.QUARANTINED
        store.job_write(
            messages=lines,
            outcomes=[Outcome(c.id, c.attempt, end, "1", None if end is Q.SUCCEEDED else "{}",
                              crashed=crashed)],
        )  # fmt: skip
    assert state(store, job_id) is end
    if ago:
        age(store, job_id, ago)
    return job_id


def exists(store: Store, job_id: str) -> bool:
    return store.job_get(job_id) is not None


def prune_all(store: Store, policy: RetentionPolicy = DEFAULT, limit: int = 100) -> PruneResult:
    """Batches until one is not full; everything they deleted."""
    total = PruneResult()
    while True:
        result = store.job_prune_expired(policy, limit=limit)
        total = total.plus(result)
        if not result.full:
            return total


def test_finished_jobs_past_the_default_retention_go_with_their_history(store: Store) -> None:
    old = {
        Q.SUCCEEDED: finished(store, Q.SUCCEEDED, ago=8 * DAY),
        Q.FAILED: finished(store, Q.FAILED, ago=31 * DAY),
        Q.CANCELLED: finished(store, Q.CANCELLED, ago=8 * DAY),
        Q.QUARANTINED: finished(store, Q.QUARANTINED, ago=31 * DAY),
    }
    kept = [
        finished(store, Q.SUCCEEDED, ago=6 * DAY),
        finished(store, Q.FAILED, ago=8 * DAY),  # failed keeps 30 days
        finished(store, Q.CANCELLED),
        finished(store, Q.QUARANTINED, ago=29 * DAY),
    ]

    result = store.job_prune_expired(DEFAULT, limit=100)

    assert result.counts() == {"succeeded": 1, "failed": 1, "cancelled": 1, "quarantined": 1}
    assert result.total == 4 and not result.full
    # Three runs wrote started + outcome and two lines; the cancel wrote one event.
    assert (result.events, result.messages) == (7, 6)
    for job_id in old.values():
        assert not exists(store, job_id)
        assert store.job_events(job_id) == [] and store.job_messages(job_id) == []
    for job_id in kept:
        assert exists(store, job_id)
        assert store.job_events(job_id) != []
    assert store.job_prune_expired(DEFAULT, limit=100) == PruneResult()


def test_queued_scheduled_and_running_jobs_are_never_touched(store: Store) -> None:
    (queued,) = add(store)
    (scheduled,) = add(store, delay=3600)
    running = run_one(store).id
    # Even with a finished_at far in the past, as a row written by hand might have.
    for job_id in (queued, scheduled, running):
        sql(store, "UPDATE {jobs} SET finished_at = 1.0 WHERE id = ?", job_id)
    everything = RetentionPolicy.of(dict.fromkeys(("succeeded", "failed", "cancelled",
                                                   "quarantined"), 0))  # fmt: skip

    assert store.job_prune_expired(everything, limit=100) == PruneResult()
    assert store.job_prune_count(everything) == PruneResult()
    assert state(store, queued) is Q.QUEUED
    assert state(store, scheduled) is Q.SCHEDULED
    assert state(store, running) is Q.RUNNING


def test_batches_delete_at_most_the_limit_oldest_first(store: Store) -> None:
    ids = [finished(store, ago=(20 - n) * DAY, messages=0) for n in range(5)]  # oldest first

    first = store.job_prune_expired(DEFAULT, limit=2)
    assert first.total == 2 and first.full
    assert [exists(store, j) for j in ids] == [False, False, True, True, True]

    rest = prune_all(store, limit=2)
    assert rest.total == 3 and not rest.full
    assert not any(exists(store, j) for j in ids)


def test_a_task_retention_stored_with_the_job_wins_over_the_settings(store: Store) -> None:
    hour = retention(3600)
    short = finished(store, ago=2 * 3600, options=hour)  # default would keep it 7 days
    short_recent = finished(store, ago=60, options=hour)
    year = finished(store, ago=60 * DAY, options=retention({"succeeded": 365 * DAY}))
    forever = finished(store, ago=5000 * DAY, options=retention("forever"))
    # A mapping names some states; the others keep the settings' retention.
    only_failed = retention({"failed": None})
    failed_kept = finished(store, Q.FAILED, ago=400 * DAY, options=only_failed)
    succeeded_default = finished(store, ago=8 * DAY, options=only_failed)
    plain = finished(store, ago=2 * 3600)

    result = prune_all(store)

    assert result.counts()["succeeded"] == 2 and result.total == 2
    assert not exists(store, short) and not exists(store, succeeded_default)
    for job_id in (short_recent, year, forever, failed_kept, plain):
        assert exists(store, job_id)


def test_a_retention_of_zero_prunes_at_the_next_prune(store: Store) -> None:
    now = finished(store, options=retention({"succeeded": 0}))
    assert prune_all(store).total == 1
    assert not exists(store, now)


@pytest.mark.parametrize(
    "options",
    [
        '{"retention": ',  # not JSON
        '{"retention": {"succeeded": "soon"}}',
        '{"retention": {"succeeded": -5}}',
        '{"retention": {"succeeded": [1]}}',
        '{"retention": 3600}',
        '{"retention": "forever"}',
        '["retention"]',
        '{"retention": {"succeeded": 1e999}}',
        '{"retention": {"succeeded": 4e9}}',  # past about 100 years
    ],
)
def test_unreadable_stored_retention_falls_back_to_the_settings(store: Store, options: str) -> None:
    old = finished(store, ago=8 * DAY)
    recent = finished(store, ago=6 * DAY)
    sql(store, "UPDATE {jobs} SET options = ? WHERE id IN (?, ?)", options, old, recent)

    assert store.job_prune_count(DEFAULT).total == 1
    assert prune_all(store).total == 1
    assert not exists(store, old) and exists(store, recent)


def test_older_than_ignores_what_tasks_declared(store: Store) -> None:
    forever = finished(store, ago=3 * DAY, options=retention("forever"))
    week = finished(store, Q.FAILED, ago=3 * DAY, options=retention(7 * DAY))
    young = finished(store, ago=DAY)

    result = prune_all(store, RetentionPolicy.older_than(2 * DAY))

    assert result.counts() == {"succeeded": 1, "failed": 1, "cancelled": 0, "quarantined": 0}
    assert not exists(store, forever) and not exists(store, week) and exists(store, young)


def test_only_the_states_asked_for_are_pruned(store: Store) -> None:
    failed = finished(store, Q.FAILED, ago=40 * DAY)
    succeeded = finished(store, ago=40 * DAY, options=retention(60))

    result = prune_all(store, RetentionPolicy.from_settings(Settings(), states=["failed"]))

    assert result.counts()["failed"] == 1 and result.total == 1
    assert not exists(store, failed) and exists(store, succeeded)


def test_forever_in_the_settings_keeps_jobs_without_their_own_retention(store: Store) -> None:
    plain = finished(store, ago=900 * DAY)
    hour = finished(store, ago=7200, options=retention(3600))
    policy = RetentionPolicy.of({"failed": 30 * DAY})  # succeeded: for ever

    assert prune_all(store, policy).total == 1
    assert exists(store, plain) and not exists(store, hour)


def test_count_says_what_a_prune_would_delete_and_deletes_nothing(store: Store) -> None:
    ids = [finished(store, ago=8 * DAY) for _ in range(3)]
    ids.append(finished(store, Q.FAILED, ago=31 * DAY, options=retention(60)))
    finished(store, ago=DAY)

    counted = store.job_prune_count(DEFAULT)

    assert counted.counts() == {"succeeded": 3, "failed": 1, "cancelled": 0, "quarantined": 0}
    assert (counted.events, counted.messages) == (8, 8)
    assert all(exists(store, j) for j in ids)
    pruned = prune_all(store, limit=2)
    assert (pruned.counts(), pruned.events, pruned.messages) == (
        counted.counts(),
        counted.events,
        counted.messages,
    )


def test_a_job_retried_by_hand_is_no_longer_prunable(store: Store) -> None:
    job_id = finished(store, Q.FAILED, ago=40 * DAY)
    assert store.job_retry([job_id]) == [job_id]

    assert prune_all(store) == PruneResult()
    assert state(store, job_id) is Q.QUEUED
    assert claim(store, job_ids=[job_id])  # it runs again, history and all
    assert [e.kind for e in store.job_events(job_id)][-2:] == ["retried", "started"]


def test_sqlite_prunes_by_index_ranges_only(sqlite_url: str) -> None:
    """The prune's statements walk the retention index (migration 0003), never the table:
    its expression and the query's must stay the same text."""
    from offload.store.sqlite import queries as SQ

    store = SQLiteStore(store_settings(sqlite_url))
    try:
        finished(store, ago=8 * DAY)
        conn = sqlite3.connect(store.path)
        try:
            for text, params in (
                (SQ.RETENTION_NEXT, ("succeeded", -1.0)),
                (SQ.prune_bucket(True), ("succeeded", 60.0, 1.0, 10)),
                (SQ.prune_bucket(False), ("succeeded", 1.0, 10)),
            ):
                rows = conn.execute("EXPLAIN QUERY PLAN " + text, params)
                plan = " ".join(row[3] for row in rows)
                assert "USING INDEX offload_jobs_retention" in plan, plan
                assert "TEMP B-TREE" not in plan, plan  # in index order, no sort
            # The longest retention a task may declare is the longest the SQL reads.
            assert f"BETWEEN 0 AND {MAX_RETENTION:.0f}" in SQ.RETENTION_KEEP
        finally:
            conn.close()
    finally:
        store.close()


def test_sqlite_a_blob_in_options_falls_back_to_the_settings(sqlite_url: str) -> None:
    store = SQLiteStore(store_settings(sqlite_url))
    try:
        old = finished(store, ago=8 * DAY)
        sql(store, "UPDATE {jobs} SET options = ? WHERE id = ?", b'{"retention": 1}', old)
        assert prune_all(store).total == 1
        assert not exists(store, old)
    finally:
        store.close()
