"""Unique windows and debounce: what a unique key holds beyond "one unfinished job".

``unique_for`` keeps a key taken for a window after its job was stored, whatever the job's
state (or only in ``unique_states``); ``debounce`` merges a burst of enqueues into the one
waiting job, pushed back each time. Plain ``unique_key`` (one unfinished job) is in
``test_jobs.py``."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from offload.retention import RetentionPolicy
from offload.store import Store, open_store
from offload.types import Outcome
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import Q, add, claim, job, run_one, state


def finish(store: Store, job_id: str, outcome: Q = Q.SUCCEEDED) -> None:
    (c,) = claim(store, job_ids=[job_id])
    assert store.job_write(outcomes=[Outcome(c.id, c.attempt, outcome, "1")]) == [True]


# -- unique windows ------------------------------------------------------------------------------
def test_a_window_keeps_the_key_after_the_job_finished(store: Store) -> None:
    (first,) = add(store, unique_key="feed", unique_for=3600.0)
    finish(store, first)
    again = job(unique_key="feed", unique_for=3600.0)
    assert store.job_insert_many([again]) == [first]
    assert store.job_get(again.id) is None
    finish_failed = job(unique_key="feed", unique_for=3600.0)
    assert store.job_insert_many([finish_failed]) == [first]


def test_the_key_is_free_once_the_window_passed(store: Store) -> None:
    (first,) = add(store, unique_key="feed", unique_for=0.3)
    finish(store, first)
    time.sleep(0.5)
    again = job(unique_key="feed", unique_for=0.3)
    assert store.job_insert_many([again]) == [again.id]
    # The window starts again from the new job.
    third = job(unique_key="feed", unique_for=0.3)
    assert store.job_insert_many([third]) == [again.id]


def test_an_unfinished_job_holds_its_key_past_the_window(store: Store) -> None:
    (first,) = add(store, unique_key="feed", unique_for=0.2)
    time.sleep(0.4)
    assert store.job_insert_many([job(unique_key="feed", unique_for=0.2)]) == [first]
    claim(store)
    assert store.job_insert_many([job(unique_key="feed", unique_for=0.2)]) == [first]


def test_unique_states_choose_which_finished_states_hold_the_key(store: Store) -> None:
    only_ok = (Q.SUCCEEDED,)
    (first,) = add(store, unique_key="k", unique_for=3600.0, unique_states=only_ok)
    finish(store, first, Q.FAILED)
    again = job(unique_key="k", unique_for=3600.0, unique_states=only_ok)
    assert store.job_insert_many([again]) == [again.id]  # a failure does not hold it
    finish(store, again.id, Q.SUCCEEDED)
    third = job(unique_key="k", unique_for=3600.0, unique_states=only_ok)
    assert store.job_insert_many([third]) == [again.id]


def test_a_deleted_job_holds_no_key(store: Store) -> None:
    (first,) = add(store, unique_key="k", unique_for=3600.0)
    finish(store, first)
    assert store.job_delete([first]) == [first]
    again = job(unique_key="k", unique_for=3600.0)
    assert store.job_insert_many([again]) == [again.id]


def test_a_window_repeated_within_one_batch_stores_one_job(store: Store) -> None:
    a, b = job(unique_key="k", unique_for=60.0), job(unique_key="k", unique_for=60.0)
    plain = job()
    assert store.job_insert_many([a, b, plain]) == [a.id, a.id, plain.id]
    assert sum(store.job_counts().values()) == 2


def test_windowed_and_plain_keys_do_not_mix(store: Store) -> None:
    """A plain unique key is free once its job finished, even if a windowed job once
    used the same text: the plain job asks for nothing more than "one unfinished"."""
    (first,) = add(store, unique_key="k", unique_for=3600.0)
    finish(store, first)
    plain = job(unique_key="k")
    assert store.job_insert_many([plain]) == [plain.id]


def test_concurrent_enqueues_of_one_window_store_one_job(store_url: str, store: Store) -> None:
    stores = [open_store(store_settings(store_url)) for _ in range(6)]
    try:
        barrier = threading.Barrier(len(stores))
        results: list[str] = []
        lock = threading.Lock()

        def enqueue(s: Store) -> None:
            barrier.wait()
            for _ in range(5):
                (got,) = s.job_insert_many([job(unique_key="race", unique_for=60.0)])
                with lock:
                    results.append(got)

        threads = [threading.Thread(target=enqueue, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 30 and len(set(results)) == 1
        assert sum(store.job_counts().values()) == 1
    finally:
        for s in stores:
            s.close()


# -- debounce -------------------------------------------------------------------------------------
def test_debounce_pushes_the_waiting_job_back_and_takes_the_new_arguments(store: Store) -> None:
    first = job(unique_key="reindex", debounce=30.0, args="[1]")
    assert store.job_insert_many([first]) == [first.id]
    row = store.job_get(first.id)
    assert row is not None and state(store, first.id) is Q.SCHEDULED
    assert row.run_at == pytest.approx(store.now() + 30, abs=2)
    time.sleep(0.3)
    second = job(unique_key="reindex", debounce=30.0, args="[2]")
    assert store.job_insert_many([second]) == [first.id]
    assert store.job_get(second.id) is None
    later = store.job_get(first.id)
    assert later is not None and later.args == "[2]"
    assert later.run_at > row.run_at + 0.2
    assert sum(store.job_counts().values()) == 1


def test_debounce_stores_a_new_job_while_the_last_one_runs(store: Store) -> None:
    first = job(unique_key="reindex", debounce=0.0)
    store.job_insert_many([first])
    (running,) = claim(store)
    second = job(unique_key="reindex", debounce=5.0)
    assert store.job_insert_many([second]) == [second.id]
    third = job(unique_key="reindex", debounce=5.0, args="[3]")
    assert store.job_insert_many([third]) == [second.id]
    assert state(store, running.id) is Q.RUNNING


def test_debounce_stores_a_new_job_once_the_last_one_finished(store: Store) -> None:
    first = job(unique_key="k", debounce=0.0)
    store.job_insert_many([first])
    finish(store, first.id)
    second = job(unique_key="k", debounce=0.0)
    assert store.job_insert_many([second]) == [second.id]


def test_debounce_merges_only_jobs_of_the_same_task(store: Store) -> None:
    first = job(unique_key="k", debounce=10.0, task="a")
    store.job_insert_many([first])
    other = job(unique_key="k", debounce=10.0, task="b")
    assert store.job_insert_many([other]) == [other.id]


def test_debounce_does_not_merge_into_a_job_waiting_for_its_retry(store: Store) -> None:
    c = run_one(store, unique_key="k", debounce=0.0, max_attempts=3)
    retry = Outcome(c.id, c.attempt, Q.QUEUED, error='{"type": "E"}', delay=60.0)
    assert store.job_write(outcomes=[retry]) == [True]
    fresh = job(unique_key="k", debounce=1.0)
    assert store.job_insert_many([fresh]) == [fresh.id]


def test_debounce_within_one_batch_stores_one_job_with_the_last_arguments(store: Store) -> None:
    a = job(unique_key="k", debounce=10.0, args="[1]")
    b = job(unique_key="k", debounce=10.0, args="[2]")
    assert store.job_insert_many([a, b]) == [a.id, a.id]
    row = store.job_get(a.id)
    assert row is not None and row.args == "[2]"


def key_records(store: Store) -> set[str]:
    """The keys the store keeps a record of (read straight from its table)."""
    if store.url.startswith("sqlite"):
        conn = sqlite3.connect(store.url[len("sqlite:///") :])
        try:
            return {r[0] for r in conn.execute("SELECT key FROM offload_keys")}
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(store.url) as conn:
        return {r[0] for r in conn.execute("SELECT key FROM offload.keys")}


def test_prune_drops_key_records_past_their_use(store: Store) -> None:
    (windowed,) = add(store, unique_key="w", unique_for=0.2)
    finish(store, windowed)
    done = job(unique_key="d", debounce=0.0)
    store.job_insert_many([done])
    finish(store, done.id)
    store.job_insert_many([job(unique_key="waiting", debounce=600.0)])
    add(store, unique_key="open", unique_for=3600.0)
    time.sleep(0.4)
    assert key_records(store) == {"w", "d", "waiting", "open"}
    store.job_prune_expired(RetentionPolicy.of({"succeeded": 3600}), limit=100)
    assert key_records(store) == {"waiting", "open"}
