"""A cancel request outlives the run it was made during: a job whose cancel was requested
is never queued again (the next claim would clear the request and run it again). An
outcome that would requeue it, or the rescue of its lease, ends it ``cancelled`` with an
event that says why; a terminal outcome stays what it is."""

from __future__ import annotations

from typing import Any

import pytest

from offload.store import Store
from offload.testing import wait_for
from offload.types import ClaimRequest, ErrorInfo, Outcome, Rescued
from tests.store.contract.helpers import Q, add, claim, kinds, run_one, state

BOOM = ErrorInfo("ValueError", "boom").to_json()

#: Outcomes that would put the job back in the queue: a retry after an error (later, or at
#: once), a crash, a requeue at shutdown.
REQUEUES: dict[str, dict[str, Any]] = {
    "retry later": dict(error=BOOM, delay=60.0, reason="ValueError: boom; retry 1/2 in 60.0 s"),
    "retry now": dict(error=BOOM, delay=0.0, reason="ValueError: boom; retry 1/2 in 0.0 s"),
    "crash": dict(
        error=ErrorInfo("WorkerCrash", "the child process running the job died").to_json(),
        count_error=False, crashed=True, reason="child 1 killed; crash 1/3, running it again",
    ),
    "shutdown": dict(count_error=False, reason="worker stopped before the job finished; requeued"),
}  # fmt: skip


def _requested(store: Store, **fields: object) -> tuple[str, int]:
    c = run_one(store, max_attempts=3, **fields)
    assert store.job_cancel([c.id]) == {c.id: Q.RUNNING}
    return c.id, c.attempt


def _assert_cancelled_once(store: Store, job_id: str, after: str) -> None:
    record = store.job_get(job_id)
    assert record is not None
    assert record.state is Q.CANCELLED and record.finished_at is not None
    assert record.leased_until is None and record.attempt == 1
    last = store.job_events(job_id)[-1]
    assert last.kind == "cancelled"
    assert last.message == f"cancel requested; not retried after {after}"
    assert claim(store) == []  # nothing left to run


@pytest.mark.parametrize("how", list(REQUEUES))
def test_a_requeue_of_a_job_asked_to_cancel_ends_it_cancelled(store: Store, how: str) -> None:
    job_id, attempt = _requested(store)
    outcome = Outcome(job_id, attempt, Q.QUEUED, worker_id="w1", **REQUEUES[how])
    assert store.job_write(outcomes=[outcome]) == [True]
    after = {
        "retry later": "ValueError: boom",
        "retry now": "ValueError: boom",
        "crash": "WorkerCrash: the child process running the job died",
        "shutdown": "worker stopped before the job finished; requeued",
    }[how]
    _assert_cancelled_once(store, job_id, after)
    record = store.job_get(job_id)
    assert record is not None and record.worker_id == "w1"
    if how.startswith("retry"):
        assert record.errors == 1 and record.error == BOOM  # the run's error is kept
    if how == "crash":
        assert record.crashes == 1


@pytest.mark.parametrize("delay", [0.0, 60.0])
def test_write_and_claim_ends_a_job_asked_to_cancel_and_claims_the_next(
    store: Store, delay: float
) -> None:
    job_id, attempt = _requested(store)
    (other,) = add(store)
    accepted, claimed = store.job_write_and_claim(
        claim=ClaimRequest("w1", ["default"], ["t"], 5, 30.0),
        outcomes=[Outcome(job_id, attempt, Q.QUEUED, error=BOOM, delay=delay)],
    )
    assert accepted == [True]
    assert [c.id for c in claimed] == [other]
    _assert_cancelled_once(store, job_id, "ValueError: boom")


def test_terminal_outcomes_of_a_job_asked_to_cancel_stay_what_they_are(store: Store) -> None:
    done, failed = _requested(store), _requested(store)
    store.job_write(
        outcomes=[
            Outcome(done[0], done[1], Q.SUCCEEDED, result="1"),
            Outcome(failed[0], failed[1], Q.FAILED, error=BOOM),
        ]
    )
    assert state(store, done[0]) is Q.SUCCEEDED
    assert state(store, failed[0]) is Q.FAILED
    assert kinds(store, failed[0])[-1] == "failed"


def test_a_job_not_asked_to_cancel_is_still_requeued(store: Store) -> None:
    c = run_one(store, max_attempts=3)
    store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.QUEUED, error=BOOM)])
    assert state(store, c.id) is Q.QUEUED
    assert kinds(store, c.id)[-1] == "retry"


def test_a_stale_requeue_of_a_job_asked_to_cancel_is_refused(store: Store) -> None:
    job_id, attempt = _requested(store)
    outcome = Outcome(job_id, attempt + 1, Q.QUEUED, error=BOOM)
    assert store.job_write(outcomes=[outcome]) == [False]
    assert state(store, job_id) is Q.RUNNING
    assert kinds(store, job_id)[-1] == "refused"


def test_the_rescue_of_a_job_asked_to_cancel_ends_it_cancelled(store: Store) -> None:
    (job_id,) = add(store, max_attempts=3)
    claim(store, lease=0.05)
    store.job_cancel([job_id])
    rescued = _rescue_when_expired(store)
    assert [(r.job_id, r.state) for r in rescued] == [(job_id, Q.CANCELLED)]
    _assert_cancelled_once(store, job_id, "lease expired (worker w1 stopped heartbeating)")
    record = store.job_get(job_id)
    assert record is not None and record.crashes == 1


def test_the_rescue_at_the_crash_limit_still_quarantines(store: Store) -> None:
    (job_id,) = add(store, max_attempts=3)
    claim(store, lease=0.05)
    store.job_cancel([job_id])
    (rescued,) = _rescue_when_expired(store, crash_limit=1)
    assert rescued.state is Q.QUARANTINED
    assert state(store, job_id) is Q.QUARANTINED


def _rescue_when_expired(store: Store, crash_limit: int = 3) -> list[Rescued]:
    return wait_for(
        lambda: store.lease_rescue_expired(crash_limit=crash_limit), timeout=10,
        what="the lease to expire",
    )  # fmt: skip


def test_a_cancel_says_who_asked_in_the_history(store: Store) -> None:
    (waiting,) = add(store)
    running = run_one(store)
    got = store.job_cancel([waiting, running.id], by="alice (dashboard)")
    assert got == {waiting: Q.CANCELLED, running.id: Q.RUNNING}
    last = lambda job_id: store.job_events(job_id)[-1]  # noqa: E731
    assert (last(waiting).kind, last(waiting).message) == (
        "cancelled",
        "cancelled by alice (dashboard)",
    )
    assert (last(running.id).kind, last(running.id).message) == (
        "cancel_requested", "by alice (dashboard)",
    )  # fmt: skip
    assert abs(last(running.id).at - store.now()) < 5
    (plain,) = add(store)
    store.job_cancel([plain])
    assert last(plain).message == "cancelled"
