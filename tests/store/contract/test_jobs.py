"""Jobs: insert, read back, scheduled run_at, unique keys, listing.

Transactional enqueue (on the caller's own connection) is backend-specific and lives in
``tests/store/test_sqlite.py`` and ``tests/store/test_postgres.py``."""

from __future__ import annotations

import json
import time

import pytest

from offload.errors import StoreError
from offload.ids import uuid7
from offload.store import Store
from offload.types import JobFilter, Outcome
from tests.store.contract.helpers import Q, add, claim, job, run_one, state


def test_inserted_job_reads_back_with_every_field(store: Store) -> None:
    new = job(
        queue="mail", args='[1, "two"]', kwargs='{"x": null}', priority=7, max_attempts=3,
        timeout=12.5, options='{"backoff": 2}', delay=0.0,
    )  # fmt: skip
    before = store.now()
    assert store.job_insert_many([new]) == [new.id]
    record = store.job_get(new.id)
    assert record is not None
    assert (record.id, record.task, record.queue, record.state) == (new.id, "t", "mail", Q.QUEUED)
    assert (record.args, record.kwargs, record.options) == (new.args, new.kwargs, new.options)
    assert (record.priority, record.max_attempts, record.timeout) == (7, 3, 12.5)
    assert (record.attempt, record.errors, record.crashes) == (0, 0, 0)
    assert before - 1 <= record.created_at <= store.now() + 1
    assert record.run_at == pytest.approx(record.created_at, abs=0.5)
    assert record.started_at is record.finished_at is record.leased_until is None
    assert record.worker_id is None and record.unique_key is None
    assert record.result is None and record.error is None
    assert json.loads(record.saved) == {} and not record.cancel_requested
    assert record.progress.current == 0 and record.progress.total is None


def test_unknown_job_reads_as_none(store: Store) -> None:
    assert store.job_get(uuid7()) is None


def test_enqueue_many_returns_ids_in_order(store: Store) -> None:
    jobs = [job() for _ in range(50)]
    assert store.job_insert_many(jobs) == [j.id for j in jobs]
    assert store.job_insert_many([]) == []


def test_enqueue_many_is_all_or_nothing(store: Store) -> None:
    first, second = job(), job()
    duplicate = job(id=first.id)
    with pytest.raises(StoreError):
        store.job_insert_many([first, second, duplicate])
    assert store.job_get(first.id) is None
    assert store.job_get(second.id) is None
    assert store.job_counts() == {}


def test_job_with_future_run_at_reads_as_scheduled(store: Store) -> None:
    (later,) = add(store, delay=60)
    (at,) = add(store, run_at=store.now() + 60)
    (due,) = add(store, run_at=store.now() - 1)
    assert state(store, later) is Q.SCHEDULED
    assert state(store, at) is Q.SCHEDULED
    assert state(store, due) is Q.QUEUED
    record = store.job_get(later)
    assert record is not None and record.run_at > store.now() + 50


def test_scheduled_job_reads_as_queued_once_due(store: Store) -> None:
    (job_id,) = add(store, delay=0.3)
    assert state(store, job_id) is Q.SCHEDULED
    deadline = time.monotonic() + 5
    while state(store, job_id) is Q.SCHEDULED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state(store, job_id) is Q.QUEUED


def test_unique_key_returns_the_existing_job_while_active(store: Store) -> None:
    (first,) = add(store, unique_key="report:1")
    second = job(unique_key="report:1")
    assert store.job_insert_many([second]) == [first]
    assert store.job_get(second.id) is None
    claim(store)
    assert store.job_insert_many([job(unique_key="report:1")]) == [first]  # running counts


def test_unique_key_is_free_again_once_the_job_finished(store: Store) -> None:
    claimed = run_one(store, unique_key="k")
    store.job_write(outcomes=[Outcome(claimed.id, claimed.attempt, Q.SUCCEEDED, "1")])
    again = job(unique_key="k")
    assert store.job_insert_many([again]) == [again.id]


def test_unique_key_repeated_within_one_batch_stores_one_job(store: Store) -> None:
    a, b, plain = job(unique_key="k"), job(unique_key="k"), job()
    assert store.job_insert_many([a, b, plain]) == [a.id, a.id, plain.id]
    assert store.job_get(b.id) is None
    assert sum(store.job_counts().values()) == 2


def test_list_returns_newest_first_and_filters(store: Store) -> None:
    a = add(store, queue="a", task="x")[0]
    b = add(store, queue="b", task="y")[0]
    c = add(store, queue="a", task="y", delay=60)[0]
    running = run_one(store, queue="b", task="t")
    ids = lambda f: [r.id for r in store.job_list(f)]  # noqa: E731
    assert ids(JobFilter()) == [running.id, c, b, a]
    assert ids(JobFilter(queue="a")) == [c, a]
    assert ids(JobFilter(task="y")) == [c, b]
    assert ids(JobFilter(state=Q.SCHEDULED)) == [c]
    assert ids(JobFilter(state=Q.QUEUED)) == [b, a]
    assert ids(JobFilter(state=Q.RUNNING)) == [running.id]
    assert ids(JobFilter(state=Q.QUEUED, queue="a", task="x")) == [a]
    assert ids(JobFilter(state=Q.FAILED)) == []


def test_list_pages_backwards_by_before_id(store: Store) -> None:
    all_ids = store.job_insert_many([job() for _ in range(7)])
    pages: list[list[str]] = []
    before = None
    while True:
        page = store.job_list(JobFilter(limit=3, before_id=before))
        if not page:
            break
        pages.append([r.id for r in page])
        before = page[-1].id
    assert pages == [all_ids[6:3:-1], all_ids[3:0:-1], all_ids[0:1]]
