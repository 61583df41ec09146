"""Admin operations: cancel, retry, delete, counts and pruning of finished jobs."""

from __future__ import annotations

import time

from offload.ids import uuid7
from offload.store import Store
from offload.types import MessageAdd, Outcome
from tests.store.contract.helpers import Q, add, claim, kinds, run_one, state


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
