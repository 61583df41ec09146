"""The store contract: one behaviour per test, each run on SQLite and on PostgreSQL.

A new backend is done when this file passes. Backend-specific behaviour lives in
``test_sqlite.py`` and ``test_postgres.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from offload.errors import SchemaError, StoreError
from offload.ids import uuid7
from offload.store import Store, open_store
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    JobFilter,
    JobState,
    MessageAdd,
    NewJob,
    Outcome,
    ProcessInfo,
    ProgressUpdate,
    SaveValue,
)
from tests.fixtures.postgres import store_settings

Q = JobState


def job(**fields: Any) -> NewJob:
    fields.setdefault("id", uuid7())
    fields.setdefault("task", "t")
    return NewJob(**fields)


def add(store: Store, n: int = 1, **fields: Any) -> list[str]:
    return store.job_insert_many([job(**fields) for _ in range(n)])


def claim(
    store: Store,
    limit: int = 10,
    *,
    worker: str = "w1",
    queues: Sequence[str] = ("default",),
    tasks: Sequence[str] = ("t",),
    lease: float = 30.0,
    job_ids: Sequence[str] | None = None,
) -> list[ClaimedJob]:
    return store.job_claim(
        worker_id=worker, queues=queues, tasks=tasks, limit=limit, lease=lease, job_ids=job_ids
    )


def run_one(store: Store, **fields: Any) -> ClaimedJob:
    """Insert one job and claim it."""
    (job_id,) = add(store, **fields)
    (claimed,) = claim(store, job_ids=[job_id], queues=[fields.get("queue", "default")])
    return claimed


def state(store: Store, job_id: str) -> JobState:
    record = store.job_get(job_id)
    assert record is not None
    return record.state


def kinds(store: Store, job_id: str) -> list[str]:
    return [e.kind for e in store.job_events(job_id)]


# -- insert and read ---------------------------------------------------------------------


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


# -- unique keys -------------------------------------------------------------------------


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


# -- claims ------------------------------------------------------------------------------


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


# -- outcomes ----------------------------------------------------------------------------


def test_success_outcome_finishes_the_job_with_its_result(store: Store) -> None:
    c = run_one(store)
    ok = store.job_write(
        outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, result='{"n": 1}', worker_id="w1")]
    )
    assert ok == [True]
    record = store.job_get(c.id)
    assert record is not None
    assert record.state is Q.SUCCEEDED and record.result == '{"n": 1}'
    assert record.finished_at is not None and record.leased_until is None
    assert record.errors == 0
    assert kinds(store, c.id) == ["started", "succeeded"]


def test_retry_outcome_requeues_after_the_delay(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    error = '{"type": "ValueError", "message": "boom", "traceback": ""}'
    assert store.job_write(
        outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error=error, delay=60, reason="boom")]
    ) == [True]
    record = store.job_get(c.id)
    assert record is not None
    assert record.state is Q.SCHEDULED and record.errors == 1 and record.error == error
    assert record.run_at > store.now() + 50
    assert record.worker_id is None and record.leased_until is None
    assert claim(store) == []
    assert kinds(store, c.id) == ["started", "retry"]


def test_retry_outcome_without_delay_is_claimable_as_the_next_attempt(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error="{}")])
    (again,) = claim(store)
    assert (again.id, again.attempt, again.errors) == (c.id, 2, 1)


def test_requeue_after_a_crash_counts_the_crash_and_the_error(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error="{}", crashed=True)])
    record = store.job_get(c.id)
    assert record is not None
    assert (record.state, record.errors, record.crashes) == (Q.QUEUED, 1, 1)
    assert kinds(store, c.id) == ["started", "retry"]


def test_success_after_a_retry_clears_the_error(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error='{"type": "E"}')])
    (again,) = claim(store)
    store.job_write(outcomes=[Outcome(again.id, again.attempt, Q.SUCCEEDED, result="7")])
    record = store.job_get(c.id)
    assert record is not None
    assert (record.state, record.result, record.error, record.errors) == (
        Q.SUCCEEDED,
        "7",
        None,
        1,
    )


def test_requeue_without_counting_an_error_keeps_the_error_count(store: Store) -> None:
    c = run_one(store)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, count_error=False)])
    record = store.job_get(c.id)
    assert record is not None and record.state is Q.QUEUED and record.errors == 0
    assert kinds(store, c.id) == ["started", "requeued"]


def test_failure_outcome_is_terminal_and_keeps_the_error(store: Store) -> None:
    c = run_one(store)
    error = '{"type": "KeyError", "message": "x", "traceback": "..."}'
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.FAILED, error=error)])
    record = store.job_get(c.id)
    assert record is not None
    assert (record.state, record.error, record.errors) == (Q.FAILED, error, 1)
    assert record.finished_at is not None
    assert claim(store) == []


def test_quarantine_outcome_counts_the_crash(store: Store) -> None:
    c = run_one(store)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUARANTINED, error="{}", crashed=True)])
    record = store.job_get(c.id)
    assert record is not None
    assert (record.state, record.crashes, record.errors) == (Q.QUARANTINED, 1, 1)
    assert kinds(store, c.id)[-1] == "quarantined"


def test_stale_outcome_changes_nothing_and_leaves_a_refused_event(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error="{}")])
    (again,) = claim(store, worker="w2")
    before = store.job_get(c.id)
    ok = store.job_write(
        outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, result="1", worker_id="w1")]
    )
    assert ok == [False]
    after = store.job_get(c.id)
    assert after == before
    assert after is not None and after.state is Q.RUNNING and after.attempt == again.attempt
    events = store.job_events(c.id)
    assert events[-1].kind == "refused" and events[-1].attempt == c.attempt
    assert "stale" in events[-1].message


def test_outcome_after_the_job_finished_is_refused(store: Store) -> None:
    c = run_one(store)
    assert store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, "1")]) == [True]
    assert store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.FAILED, error="{}")]) == [False]
    record = store.job_get(c.id)
    assert record is not None and record.state is Q.SUCCEEDED and record.result == "1"
    assert kinds(store, c.id) == ["started", "succeeded", "refused"]


def test_outcome_for_an_unknown_job_is_refused_quietly(store: Store) -> None:
    ghost = uuid7()
    assert store.job_write(outcomes=[Outcome(ghost, 1, Q.SUCCEEDED, "1")]) == [False]
    assert store.job_events(ghost) == []


def test_outcomes_in_one_call_are_answered_in_order(store: Store) -> None:
    a, b = run_one(store), run_one(store)
    got = store.job_write(
        outcomes=[
            Outcome(a.id, a.attempt, Q.SUCCEEDED, "1"),
            Outcome(b.id, b.attempt + 5, Q.SUCCEEDED, "2"),
        ]
    )
    assert got == [True, False]


def test_progress_messages_and_saves_are_fenced_on_the_attempt(store: Store) -> None:
    c = run_one(store, max_attempts=2)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error="{}")])
    (now_running,) = claim(store)
    stale = c.attempt
    store.job_write(
        progress=[ProgressUpdate(c.id, stale, 5, 10, "stale")],
        messages=[MessageAdd(c.id, stale, "stale line")],
        saves=[SaveValue(c.id, stale, "cursor", "1")],
    )
    record = store.job_get(c.id)
    assert record is not None
    assert record.progress.current == 0 and record.progress.message is None
    assert json.loads(record.saved) == {}
    assert store.job_messages(c.id) == []
    fresh = now_running.attempt
    store.job_write(
        progress=[ProgressUpdate(c.id, fresh, 5, 10, "half")],
        messages=[MessageAdd(c.id, fresh, "line")],
        saves=[SaveValue(c.id, fresh, "cursor", '{"page": 2}')],
    )
    record = store.job_get(c.id)
    assert record is not None
    assert (record.progress.current, record.progress.total) == (5, 10)
    assert record.progress.message == "half" and record.progress.percent == 50
    assert json.loads(record.saved) == {"cursor": {"page": 2}}
    assert [(m.attempt, m.text) for m in store.job_messages(c.id)] == [(fresh, "line")]


def test_writes_for_a_finished_job_change_nothing(store: Store) -> None:
    c = run_one(store)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, "1")])
    store.job_write(
        progress=[ProgressUpdate(c.id, c.attempt, 9, 9)],
        messages=[MessageAdd(c.id, c.attempt, "late")],
        saves=[SaveValue(c.id, c.attempt, "k", "1")],
    )
    record = store.job_get(c.id)
    assert record is not None and record.progress.current == 0 and record.saved == "{}"
    assert store.job_messages(c.id) == []


def test_progress_without_a_message_keeps_the_last_message(store: Store) -> None:
    c = run_one(store)
    store.job_write(progress=[ProgressUpdate(c.id, c.attempt, 1, 4, "loading")])
    store.job_write(progress=[ProgressUpdate(c.id, c.attempt, 2, 4)])
    record = store.job_get(c.id)
    assert record is not None
    assert (record.progress.current, record.progress.message) == (2, "loading")


def test_later_progress_in_one_batch_wins(store: Store) -> None:
    c = run_one(store)
    store.job_write(
        progress=[ProgressUpdate(c.id, c.attempt, 1, 4), ProgressUpdate(c.id, c.attempt, 3, 4)]
    )
    record = store.job_get(c.id)
    assert record is not None and record.progress.current == 3


def test_messages_read_oldest_first_and_the_limit_keeps_the_newest(store: Store) -> None:
    c = run_one(store)
    store.job_write(messages=[MessageAdd(c.id, c.attempt, f"line {i}") for i in range(5)])
    store.job_write(messages=[MessageAdd(c.id, c.attempt, "line 5")])
    assert [m.text for m in store.job_messages(c.id)] == [f"line {i}" for i in range(6)]
    assert [m.text for m in store.job_messages(c.id, limit=2)] == ["line 4", "line 5"]


def test_saved_values_merge_into_one_object(store: Store) -> None:
    c = run_one(store)
    store.job_write(
        saves=[SaveValue(c.id, c.attempt, "a", "1"), SaveValue(c.id, c.attempt, "b", "[2]")]
    )
    store.job_write(saves=[SaveValue(c.id, c.attempt, "a", '"one"')])
    record = store.job_get(c.id)
    assert record is not None and json.loads(record.saved) == {"a": "one", "b": [2]}


def test_record_with_nothing_to_write_returns_nothing(store: Store) -> None:
    assert store.job_write() == []


# -- leases ------------------------------------------------------------------------------


def test_lease_renew_extends_held_leases(store: Store) -> None:
    c = run_one(store)
    first = store.job_get(c.id)
    assert first is not None and first.leased_until is not None
    result = store.lease_renew(worker_id="w1", runs=[(c.id, c.attempt)], lease=300.0)
    assert result.lost == [] and result.cancel_requested == []
    renewed = store.job_get(c.id)
    assert renewed is not None and renewed.leased_until is not None
    assert renewed.leased_until > first.leased_until + 200


def test_lease_renew_reports_lost_runs_and_cancel_requests(store: Store) -> None:
    kept, cancelled, finished = run_one(store), run_one(store), run_one(store)
    store.job_cancel([cancelled.id])
    store.job_write(outcomes=[Outcome(finished.id, finished.attempt, Q.SUCCEEDED, "1")])
    ghost = uuid7()
    result = store.lease_renew(
        worker_id="w1",
        runs=[
            (kept.id, kept.attempt),
            (cancelled.id, cancelled.attempt),
            (finished.id, finished.attempt),
            (kept.id, kept.attempt + 1),  # an attempt this worker never had
            (ghost, 1),
        ],
        lease=30.0,
    )
    assert result.cancel_requested == [cancelled.id]
    assert result.lost == [finished.id, kept.id, ghost]
    other = store.lease_renew(worker_id="w2", runs=[(kept.id, kept.attempt)], lease=30)
    assert other.lost == [kept.id]  # held by w1, not w2
    assert store.lease_renew(worker_id="w1", runs=[], lease=30).lost == []


def test_lease_rescue_requeues_then_quarantines_at_the_crash_limit(store: Store) -> None:
    (job_id,) = add(store, max_attempts=10)
    for n in (1, 2):
        (c,) = claim(store, lease=0.05, worker=f"w{n}")
        time.sleep(0.1)
        (rescued,) = store.lease_rescue_expired(crash_limit=3)
        assert (rescued.job_id, rescued.attempt, rescued.state) == (job_id, c.attempt, Q.QUEUED)
        record = store.job_get(job_id)
        assert record is not None and record.state is Q.QUEUED and record.crashes == n
        assert record.worker_id is None and record.leased_until is None
        assert record.error is not None and "LeaseExpired" in record.error
    claim(store, lease=0.05, worker="w3")
    time.sleep(0.1)
    (rescued,) = store.lease_rescue_expired(crash_limit=3)
    assert rescued.state is Q.QUARANTINED
    record = store.job_get(job_id)
    assert record is not None and record.state is Q.QUARANTINED and record.crashes == 3
    assert record.finished_at is not None
    assert kinds(store, job_id)[-1] == "quarantined"
    assert "w3" in (store.job_events(job_id)[-1].message or "")


def test_lease_rescue_leaves_live_leases_alone(store: Store) -> None:
    c = run_one(store)
    assert store.lease_rescue_expired(crash_limit=3) == []
    assert state(store, c.id) is Q.RUNNING


def test_outcome_of_a_rescued_run_is_refused(store: Store) -> None:
    (job_id,) = add(store, max_attempts=3)
    (c,) = claim(store, lease=0.05)
    time.sleep(0.1)
    store.lease_rescue_expired(crash_limit=3)
    assert store.job_write(outcomes=[Outcome(job_id, c.attempt, Q.SUCCEEDED, "1")]) == [False]
    assert state(store, job_id) is Q.QUEUED


# -- cancel, retry, delete ---------------------------------------------------------------


def test_cancel_cancels_queued_and_scheduled_jobs(store: Store) -> None:
    (queued,) = add(store)
    (scheduled,) = add(store, delay=60)
    got = store.job_cancel([queued, scheduled])
    assert got == {queued: Q.CANCELLED, scheduled: Q.CANCELLED}
    assert state(store, queued) is Q.CANCELLED and state(store, scheduled) is Q.CANCELLED
    record = store.job_get(queued)
    assert record is not None and record.finished_at is not None
    assert claim(store) == []


def test_cancel_of_a_running_job_only_requests_it(store: Store) -> None:
    c = run_one(store)
    assert store.job_cancel([c.id]) == {c.id: Q.RUNNING}
    record = store.job_get(c.id)
    assert record is not None and record.state is Q.RUNNING and record.cancel_requested
    assert kinds(store, c.id) == ["started", "cancel_requested"]


def test_cancel_leaves_finished_jobs_and_omits_unknown_ones(store: Store) -> None:
    c = run_one(store)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, "1")])
    ghost = uuid7()
    assert store.job_cancel([c.id, ghost]) == {c.id: Q.SUCCEEDED}


def test_retry_requeues_finished_jobs_with_fresh_counts(store: Store) -> None:
    c = run_one(store)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUARANTINED, error="{}", crashed=True)])
    (queued,) = add(store)
    assert store.job_retry([c.id, queued, uuid7()]) == [c.id]
    record = store.job_get(c.id)
    assert record is not None
    assert (record.state, record.errors, record.crashes, record.error) == (Q.QUEUED, 0, 0, None)
    assert record.finished_at is None and record.result is None
    assert kinds(store, c.id)[-1] == "retried"
    (again,) = claim(store, job_ids=[c.id])
    assert again.attempt == c.attempt + 1


def test_retry_leaves_running_jobs_alone(store: Store) -> None:
    c = run_one(store)
    assert store.job_retry([c.id]) == []
    assert state(store, c.id) is Q.RUNNING


def test_retry_skips_a_job_whose_unique_key_is_taken_again(store: Store) -> None:
    c = run_one(store, unique_key="k")
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.FAILED, error="{}")])
    (other,) = add(store, unique_key="k")
    d = run_one(store)
    store.job_write(outcomes=[Outcome(d.id, d.attempt, Q.FAILED, error="{}")])
    assert store.job_retry([c.id, d.id]) == [d.id]
    assert state(store, c.id) is Q.FAILED and state(store, other) is Q.QUEUED


def test_delete_removes_jobs_with_their_history_but_not_running_ones(store: Store) -> None:
    done = run_one(store)
    store.job_write(
        outcomes=[Outcome(done.id, done.attempt, Q.SUCCEEDED, "1")],
    )
    running = run_one(store)
    store.job_write(messages=[MessageAdd(running.id, running.attempt, "hi")])
    (queued,) = add(store)
    assert sorted(store.job_delete([done.id, running.id, queued, uuid7()])) == sorted(
        [done.id, queued]
    )
    assert store.job_get(done.id) is None and store.job_get(queued) is None
    assert store.job_events(done.id) == []
    assert state(store, running.id) is Q.RUNNING
    assert [m.text for m in store.job_messages(running.id)] == ["hi"]


# -- listing, counts, pruning ------------------------------------------------------------


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


def test_counts_by_queue_and_state(store: Store) -> None:
    add(store, 2, queue="a")
    add(store, queue="a", delay=60)
    c = run_one(store, queue="b")
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.FAILED, error="{}")])
    run_one(store, queue="b")
    assert store.job_counts() == {
        ("a", "queued"): 2,
        ("a", "scheduled"): 1,
        ("b", "failed"): 1,
        ("b", "running"): 1,
    }


def test_prune_removes_old_finished_jobs_only(store: Store) -> None:
    old = run_one(store)
    store.job_write(outcomes=[Outcome(old.id, old.attempt, Q.SUCCEEDED, "1")])
    failed = run_one(store)
    store.job_write(outcomes=[Outcome(failed.id, failed.attempt, Q.FAILED, error="{}")])
    (queued,) = add(store)
    time.sleep(0.15)
    fresh = run_one(store)
    store.job_write(outcomes=[Outcome(fresh.id, fresh.attempt, Q.SUCCEEDED, "1")])
    assert store.job_prune(older_than=0.1, states=[Q.SUCCEEDED, Q.QUEUED]) == 1
    assert store.job_get(old.id) is None and store.job_events(old.id) == []
    assert store.job_get(failed.id) is not None  # state not asked for
    assert store.job_get(queued) is not None and store.job_get(fresh.id) is not None
    assert store.job_prune(older_than=0.1, states=[Q.QUEUED]) == 0
    assert store.job_prune(older_than=0.1, states=[Q.FAILED]) == 1


# -- processes ---------------------------------------------------------------------------


def proc(pid: int = 100, **fields: Any) -> ProcessInfo:
    fields.setdefault("id", f"p{pid}")
    return ProcessInfo(kind=fields.pop("kind", "supervisor"), host="h", pid=pid, **fields)


def test_process_heartbeat_inserts_then_updates(store: Store) -> None:
    store.process_heartbeat([proc(1, queues="default", rss=10, peak_rss=50), proc(2, kind="child")])
    first = {p.id: p for p in store.process_list(gone_after=60)}
    assert set(first) == {"p1", "p2"}
    assert first["p1"].status == "running" and first["p1"].queues == "default"
    assert first["p1"].heartbeat_at == pytest.approx(store.now(), abs=5)
    time.sleep(0.02)
    store.process_heartbeat([proc(1, served=5, failed=1, current_job="j", rss=20, peak_rss=20)])
    (p1,) = [p for p in store.process_list(gone_after=60) if p.id == "p1"]
    assert (p1.served, p1.failed, p1.current_job, p1.rss) == (5, 1, "j", 20)
    assert p1.peak_rss == 50  # the peak never goes down
    assert p1.heartbeat_at > first["p1"].heartbeat_at
    assert p1.started_at == first["p1"].started_at


def test_process_list_marks_silent_processes_gone(store: Store) -> None:
    store.process_heartbeat([proc(1)])
    time.sleep(0.15)
    store.process_heartbeat([proc(2)])
    status = {p.id: p.status for p in store.process_list(gone_after=0.1)}
    assert status == {"p1": "gone", "p2": "running"}


def test_process_stop_marks_stopped_until_the_next_heartbeat(store: Store) -> None:
    store.process_heartbeat([proc(1, current_job="j")])
    store.process_stop(["p1", "nobody"])
    (p,) = store.process_list(gone_after=60)
    assert p.status == "stopped" and p.stopped_at is not None and p.current_job is None
    store.process_heartbeat([proc(1)])
    (p,) = store.process_list(gone_after=60)
    assert p.status == "running" and p.stopped_at is None


def test_process_prune_removes_stopped_and_gone_rows(store: Store) -> None:
    store.process_heartbeat([proc(1), proc(2), proc(3)])
    store.process_stop(["p1"])
    time.sleep(0.15)
    store.process_heartbeat([proc(3)])
    assert store.process_prune(older_than=0.1) == 2
    assert [p.id for p in store.process_list(gone_after=60)] == ["p3"]


# -- locks -------------------------------------------------------------------------------


def test_lock_is_exclusive_while_held(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=30)
    assert not store.lock_acquire("scheduler", "b", ttl=30)
    assert store.lock_acquire("other", "b", ttl=30)


def test_lock_owner_renews_it(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=0.2)
    assert store.lock_acquire("scheduler", "a", ttl=30)
    time.sleep(0.3)
    assert not store.lock_acquire("scheduler", "b", ttl=30)


def test_expired_lock_goes_to_the_next_taker(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=0.05)
    time.sleep(0.1)
    assert store.lock_acquire("scheduler", "b", ttl=30)
    assert not store.lock_acquire("scheduler", "a", ttl=30)


def test_lock_release_frees_it_only_for_the_owner(store: Store) -> None:
    assert store.lock_acquire("scheduler", "a", ttl=30)
    store.lock_release("scheduler", "b")
    assert not store.lock_acquire("scheduler", "b", ttl=30)
    store.lock_release("scheduler", "a")
    assert store.lock_acquire("scheduler", "b", ttl=30)


# -- wake-ups ----------------------------------------------------------------------------


def test_waiter_wakes_quickly_on_insert(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        inserted = threading.Event()

        def enqueue() -> None:
            time.sleep(0.1)
            add(store)
            inserted.set()

        thread = threading.Thread(target=enqueue)
        thread.start()
        start = time.monotonic()
        woke = waiter.wait(5.0)
        elapsed = time.monotonic() - start
        thread.join()
        assert woke
        assert inserted.is_set() or elapsed < 1.0
        assert elapsed < 1.0
    finally:
        waiter.close()


def test_waiter_times_out_without_work(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        start = time.monotonic()
        assert waiter.wait(0.2) is False
        assert 0.15 <= time.monotonic() - start < 2.0
    finally:
        waiter.close()


def test_waiter_with_zero_timeout_reports_a_pending_wake_up(store: Store) -> None:
    waiter = store.waiter(["default"])
    try:
        assert waiter.wait(0) is False
        add(store)
        time.sleep(0.05)  # let the signal travel; wait(0) only looks, it never blocks
        assert waiter.wait(0) is True
        assert waiter.wait(0) is False  # consumed
    finally:
        waiter.close()


def test_waiter_ignores_other_queues(store: Store) -> None:
    waiter = store.waiter(["mail"])
    try:
        add(store, queue="video")
        assert waiter.wait(0.2) is False
        add(store, queue="mail")
        assert waiter.wait(2.0) is True
    finally:
        waiter.close()


# -- schema and clock --------------------------------------------------------------------


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


def test_now_is_the_stores_clock_in_epoch_seconds(store: Store) -> None:
    assert store.now() == pytest.approx(time.time(), abs=5)
    a = store.now()
    time.sleep(0.01)
    assert store.now() > a


def test_store_works_again_after_close(store: Store) -> None:
    (job_id,) = add(store)
    store.close()
    assert state(store, job_id) is Q.QUEUED


# -- concurrency -------------------------------------------------------------------------


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


# -- record and claim in one transaction --------------------------------------------------
def record_and_claim(
    store: Store, outcomes: Sequence[Outcome] = (), limit: int = 10, **kw: Any
) -> tuple[list[bool], list[ClaimedJob]]:
    request = ClaimRequest(
        worker_id=kw.pop("worker", "w1"), queues=kw.pop("queues", ("default",)),
        tasks=kw.pop("tasks", ("t",)), limit=limit, lease=kw.pop("lease", 30.0),
    )  # fmt: skip
    return store.job_write_and_claim(claim=request, outcomes=outcomes, **kw)


def done(j: ClaimedJob, state: JobState = Q.SUCCEEDED, **fields: Any) -> Outcome:
    fields.setdefault("result", "1" if state is Q.SUCCEEDED else None)
    fields.setdefault("attempt", j.attempt)
    return Outcome(job_id=j.id, state=state, worker_id="w1", **fields)


def test_record_and_claim_writes_outcomes_and_claims_in_claim_order(store: Store) -> None:
    first = add(store, 3)
    running = claim(store, 3)
    later = [add(store, 1, priority=p)[0] for p in (0, 5, 1)]

    accepted, jobs = record_and_claim(store, [done(j) for j in running], limit=2)

    assert accepted == [True, True, True]
    assert [j.id for j in jobs] == [later[1], later[2]]
    assert all(j.attempt == 1 for j in jobs)
    for job_id in first:
        record = store.job_get(job_id)
        assert record is not None and record.state is Q.SUCCEEDED and record.result == "1"
        assert [e.kind for e in store.job_events(job_id)] == ["started", "succeeded"]
    assert store.job_get(later[0]).state is Q.QUEUED  # type: ignore[union-attr]
    assert store.job_get(later[1]).state is Q.RUNNING  # type: ignore[union-attr]


def test_record_and_claim_refuses_stale_outcomes_and_keeps_their_order(store: Store) -> None:
    ids = add(store, 3)
    running = claim(store, 3)
    stale = done(running[1], attempt=running[1].attempt + 5)  # not the running attempt

    accepted, jobs = record_and_claim(
        store, [done(running[0]), stale, done(running[2], Q.FAILED, error='"x"')]
    )

    assert accepted == [True, False, True]
    assert jobs == []
    states = [store.job_get(i).state for i in ids]  # type: ignore[union-attr]
    assert states == [Q.SUCCEEDED, Q.RUNNING, Q.FAILED]
    assert store.job_events(ids[1])[-1].kind == "refused"
    assert store.job_get(ids[2]).errors == 1  # type: ignore[union-attr]


def test_record_and_claim_may_claim_a_job_it_just_requeued(store: Store) -> None:
    (job_id,) = add(store, 1, max_attempts=3)
    (running,) = claim(store, 1)

    requeue = done(running, Q.QUEUED, error='"boom"', delay=0.0)
    accepted, jobs = record_and_claim(store, [requeue])

    assert accepted == [True]
    assert [(j.id, j.attempt, j.errors) for j in jobs] == [(job_id, 2, 1)]


def test_record_and_claim_with_progress_messages_and_saves(store: Store) -> None:
    add(store, 2)
    a, b = claim(store, 2)

    accepted, jobs = record_and_claim(
        store, [done(a)], limit=1,
        progress=[ProgressUpdate(b.id, b.attempt, 3, 4, "three")],
        messages=[MessageAdd(b.id, b.attempt, "hello")],
        saves=[SaveValue(b.id, b.attempt, "k", "[1]")],
    )  # fmt: skip

    assert accepted == [True] and jobs == []
    record = store.job_get(b.id)
    assert record is not None and record.progress.current == 3 and record.progress.total == 4
    assert json.loads(record.saved) == {"k": [1]}
    assert [m.text for m in store.job_messages(b.id)] == ["hello"]


def test_record_and_claim_with_nothing_to_record_only_claims(store: Store) -> None:
    ids = add(store, 2)

    accepted, jobs = record_and_claim(store, limit=5)

    assert accepted == [] and sorted(j.id for j in jobs) == sorted(ids)


def test_record_and_claim_with_no_limit_only_records(store: Store) -> None:
    add(store, 2)
    (running,) = claim(store, 1)

    accepted, jobs = record_and_claim(store, [done(running)], limit=0)

    assert accepted == [True] and jobs == []
