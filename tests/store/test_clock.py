"""On PostgreSQL every time the store compares (run_at, leases, now) is the database's:
machines with skewed clocks neither start scheduled jobs early nor rescue healthy jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from offload.ids import uuid7
from offload.store.postgres import PostgresStore
from offload.types import JobState, NewJob
from tests.fixtures.postgres import store_settings

HOUR = 3600.0


@pytest.fixture
def skewed(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    """A store in a process whose wall clock runs an hour ahead of the database's."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + HOUR)
    store = PostgresStore(store_settings(postgres_url))
    yield store
    store.close()


def claim(store: PostgresStore, lease: float = 30.0) -> list[str]:
    return [
        j.id
        for j in store.job_claim(worker_id="w", queues=["default"], tasks=["t"], limit=10,
                                 lease=lease)
    ]  # fmt: skip


def test_store_now_is_the_database_clock_not_the_process_clock(skewed: PostgresStore) -> None:
    assert abs(skewed.now() - (time.time() - HOUR)) < 5.0


def test_a_delayed_job_from_a_fast_clock_is_not_started_early(skewed: PostgresStore) -> None:
    job_id = uuid7()
    skewed.job_insert_many([NewJob(id=job_id, task="t", delay=60.0)])
    assert claim(skewed) == []
    got = skewed.job_get(job_id)
    assert got is not None and got.state is JobState.SCHEDULED
    assert abs(got.run_at - (skewed.now() + 60.0)) < 5.0


def test_a_fresh_lease_is_not_rescued_by_a_fast_clock(skewed: PostgresStore) -> None:
    job_id = uuid7()
    skewed.job_insert_many([NewJob(id=job_id, task="t")])
    assert claim(skewed, lease=30.0) == [job_id]
    assert skewed.lease_rescue_expired(crash_limit=3) == []
    got = skewed.job_get(job_id)
    assert got is not None and got.state is JobState.RUNNING
