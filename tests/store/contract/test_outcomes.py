"""Outcomes: ``job_write`` and ``job_write_and_claim`` finishing, requeueing and refusing
runs, fenced on the attempt, with the events they leave."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from offload.ids import uuid7
from offload.store import Store
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    JobState,
    MessageAdd,
    Outcome,
    ProgressUpdate,
    SaveValue,
)
from tests.store.contract.helpers import Q, add, claim, kinds, run_one


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


def test_record_with_nothing_to_write_returns_nothing(store: Store) -> None:
    assert store.job_write() == []


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
