"""Regression: a job put back to run at once (a crash, a rescued lease, a requeue at
shutdown) keeps its place in line instead of going behind every job that became due while
it ran. Before the fix a child killed during a long backlog had its job wait for the whole
backlog (scenario child-sigkill: "each killed job runs again within 3 s")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from offload.ids import uuid7
from offload.store import Store, open_store
from offload.testing import wait_for
from offload.types import JobState, NewJob, Outcome
from tests.fixtures.postgres import store_settings


@pytest.fixture
def fresh_store(store_url: str) -> Iterator[Store]:
    store = open_store(store_settings(store_url))
    store.migrate()
    yield store
    store.close()


def _claim(store: Store, limit: int = 1, lease: float = 30.0) -> list[str]:
    claimed = store.job_claim(
        worker_id="w", queues=["default"], tasks=["t"], limit=limit, lease=lease
    )
    return [job.id for job in claimed]


@pytest.mark.parametrize("how", ["crash", "shutdown"])
def test_job_requeued_to_run_now_is_claimed_before_later_jobs(fresh_store: Store, how: str) -> None:
    store = fresh_store
    first = NewJob(uuid7(), "t", max_attempts=3)
    store.job_insert_many([first])
    (claimed,) = store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=1, lease=30)
    later = [NewJob(uuid7(), "t") for _ in range(5)]
    store.job_insert_many(later)

    outcome = Outcome(
        claimed.id, claimed.attempt, JobState.QUEUED, count_error=False,
        crashed=how == "crash",
    )  # fmt: skip
    assert store.job_write(outcomes=[outcome]) == [True]

    assert _claim(store) == [first.id]


def test_rescued_job_keeps_its_place_in_line(fresh_store: Store) -> None:
    store = fresh_store
    first = NewJob(uuid7(), "t", max_attempts=3)
    store.job_insert_many([first])
    assert _claim(store, lease=0.05) == [first.id]
    later = [NewJob(uuid7(), "t") for _ in range(5)]
    store.job_insert_many(later)
    store_now = store.now()
    wait_for(lambda: store.now() > store_now + 0.1, timeout=5, what="the lease expired")

    (rescued,) = store.lease_rescue_expired(crash_limit=3)

    assert rescued.job_id == first.id and rescued.state is JobState.QUEUED
    assert _claim(store) == [first.id]
