"""Claims: which jobs ``job_claim`` takes, in what order, and that concurrent claimers
(threads and processes) never share a job."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from typing import Any

import pytest

from offload.ids import uuid7
from offload.store import Store, open_store
from offload.types import JobFilter, Outcome
from tests.fixtures.postgres import store_settings
from tests.store.contract.helpers import Q, add, claim, job, state


def test_claim_order_is_priority_then_run_at_then_id(store: Store) -> None:
    now = store.now()
    low_old = job(priority=0, run_at=now - 30)
    high_late = job(priority=5, run_at=now - 1)
    high_early = job(priority=5, run_at=now - 5)
    low_old_twin = job(priority=0, run_at=now - 30)  # same run_at, larger id
    store.job_insert_many([low_old, high_late, high_early, low_old_twin])
    expected = [high_early.id, high_late.id, low_old.id, low_old_twin.id]
    one_by_one = [claim(store, 1)[0].id for _ in range(4)]
    assert one_by_one == expected


def test_claimed_batch_comes_back_in_claim_order(store: Store) -> None:
    now = store.now()
    jobs = [
        job(priority=0, run_at=now - 30),
        job(priority=5, run_at=now - 1),
        job(priority=5, run_at=now - 5),
        job(priority=0, run_at=now - 40),
    ]
    store.job_insert_many(jobs)
    assert [c.id for c in claim(store, 10)] == [jobs[2].id, jobs[1].id, jobs[3].id, jobs[0].id]


def test_claim_respects_the_limit(store: Store) -> None:
    add(store, 5)
    assert len(claim(store, 3)) == 3
    assert len(claim(store, 3)) == 2
    assert claim(store, 3) == []
    assert claim(store, 0) == []


def test_claim_skips_jobs_not_due(store: Store) -> None:
    add(store, delay=60)
    add(store, run_at=store.now() + 60)
    assert claim(store) == []


def test_claim_skips_other_queues(store: Store) -> None:
    (mail,) = add(store, queue="mail")
    add(store, queue="video")
    assert claim(store, queues=["default"]) == []
    assert [c.id for c in claim(store, queues=["default", "mail"])] == [mail]


def test_claim_across_queues_keeps_priority_order(store: Store) -> None:
    (a,) = add(store, queue="a", priority=1)
    (b,) = add(store, queue="b", priority=9)
    (c,) = add(store, queue="c", priority=5)
    assert [j.id for j in claim(store, 2, queues=["a", "b", "c"])] == [b, c]
    assert [j.id for j in claim(store, 2, queues=["a", "b", "c"])] == [a]


def test_claim_skips_unknown_tasks(store: Store) -> None:
    add(store, task="other")
    (mine,) = add(store, task="t")
    assert [c.id for c in claim(store, tasks=["t"])] == [mine]
    assert claim(store, tasks=["t"]) == []
    assert state(store, store.job_list(JobFilter(task="other"))[0].id) is Q.QUEUED


def test_claim_skips_jobs_leased_by_another_worker(store: Store) -> None:
    (job_id,) = add(store)
    assert [c.id for c in claim(store, worker="w1")] == [job_id]
    assert claim(store, worker="w2") == []
    assert claim(store, worker="w2", job_ids=[job_id]) == []


def test_claim_takes_a_lease_and_increments_attempt(store: Store) -> None:
    (job_id,) = add(store, max_attempts=3, timeout=9.0, options='{"a": 1}')
    before = store.now()
    (claimed,) = claim(store, worker="w7", lease=20.0)
    assert (claimed.id, claimed.attempt, claimed.max_attempts) == (job_id, 1, 3)
    assert (claimed.timeout, claimed.options, claimed.task, claimed.queue) == (
        9.0,
        '{"a": 1}',
        "t",
        "default",
    )
    record = store.job_get(job_id)
    assert record is not None
    assert record.state is Q.RUNNING and record.worker_id == "w7"
    assert record.leased_until is not None and record.started_at is not None
    assert record.leased_until == pytest.approx(record.started_at + 20.0, abs=0.01)
    assert before - 1 <= record.started_at <= store.now() + 1
    events = store.job_events(job_id)
    assert [(e.kind, e.attempt, e.worker_id) for e in events] == [("started", 1, "w7")]


def test_claim_with_job_ids_takes_only_those_that_are_due(store: Store) -> None:
    a, b, later, other_queue = job(), job(), job(delay=60), job(queue="mail")
    store.job_insert_many([a, b, later, other_queue])
    got = claim(store, job_ids=[b.id, later.id, other_queue.id, uuid7()])
    assert [c.id for c in got] == [b.id]
    assert state(store, a.id) is Q.QUEUED
    assert claim(store, job_ids=[]) == []


def test_claim_with_job_ids_respects_the_limit(store: Store) -> None:
    ids = add(store, 3)
    assert len(claim(store, 2, job_ids=ids)) == 2


def _claim_until_empty(store: Store, worker: str, batch: int = 3) -> list[str]:
    got: list[str] = []
    while True:
        claimed = claim(store, batch, worker=worker)
        if not claimed:
            return got
        got.extend(c.id for c in claimed)
        store.job_write(
            outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, "1", worker_id=worker) for c in claimed]
        )


def test_threads_claiming_at_once_never_share_a_job(store: Store) -> None:
    ids = store.job_insert_many([job() for _ in range(120)])
    results: dict[str, list[str]] = {}
    threads = [
        threading.Thread(
            target=lambda w=f"w{i}": results.__setitem__(w, _claim_until_empty(store, w))
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = Counter(i for got in results.values() for i in got)
    assert sorted(claimed) == sorted(ids)
    assert max(claimed.values()) == 1
    assert store.job_counts() == {("default", "succeeded"): 120}


def _process_claimer(url: str, worker: str, start: Any) -> list[str]:
    start.wait()
    s = open_store(store_settings(url))
    try:
        return _claim_until_empty(s, worker, batch=2)
    finally:
        s.close()


def test_processes_claiming_at_once_never_share_a_job(store: Store) -> None:
    ids = store.job_insert_many([job() for _ in range(200)])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            pending = [
                pool.apply_async(_process_claimer, (store.url, f"p{i}", start)) for i in range(4)
            ]
            start.set()
            results = [p.get(timeout=60) for p in pending]
    claimed = Counter(i for got in results for i in got)
    assert sorted(claimed) == sorted(ids)
    assert max(claimed.values()) == 1
    assert store.job_counts() == {("default", "succeeded"): 200}
    events = Counter(e.kind for job_id in ids[:20] for e in store.job_events(job_id))
    assert events == {"started": 20, "succeeded": 20}
