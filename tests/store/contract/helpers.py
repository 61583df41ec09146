"""Helpers shared by the contract modules: build, insert, claim and inspect jobs.

Import them explicitly (``from tests.store.contract.helpers import add, claim``). The
``store`` fixture itself (each test runs on SQLite and on PostgreSQL) comes from the
``tests.fixtures.postgres`` plugin, shared with the rest of the suite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from offload.ids import uuid7
from offload.store import Store
from offload.types import ClaimedJob, JobState, NewJob

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
