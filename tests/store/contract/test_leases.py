"""Leases: renewing held leases, and rescuing expired ones (requeue, then quarantine)."""

from __future__ import annotations

import time

from offload.ids import uuid7
from offload.store import Store
from offload.types import Outcome
from tests.store.contract.helpers import Q, add, claim, kinds, run_one, state


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
