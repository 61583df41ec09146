"""What metrics read at scrape time: jobs by queue and state, and how late each queue runs."""

from __future__ import annotations

from offload.store import Store
from offload.types import JobState, Outcome
from tests.store.contract.helpers import add, claim


def _finish(store: Store, queue: str, state: JobState, n: int) -> None:
    ids = add(store, n, queue=queue)
    claimed = claim(store, n, queues=[queue], job_ids=ids)
    accepted = store.job_write(
        outcomes=[Outcome(job_id=c.id, attempt=c.attempt, state=state) for c in claimed]
    )
    assert accepted == [True] * n


def test_job_counts_by_queue_and_state_with_scheduled_apart(store: Store) -> None:
    now = store.now()
    add(store, 3, queue="mail")
    add(store, 2, queue="mail", run_at=now + 3600)
    add(store, 1, queue="media", run_at=now - 60)
    running = add(store, 2, queue="media")
    claim(store, 2, queues=["media"], job_ids=running)
    _finish(store, "mail", JobState.SUCCEEDED, 4)
    _finish(store, "media", JobState.FAILED, 1)
    assert store.job_counts() == {
        ("mail", "queued"): 3,
        ("mail", "scheduled"): 2,
        ("mail", "succeeded"): 4,
        ("media", "queued"): 1,
        ("media", "running"): 2,
        ("media", "failed"): 1,
    }


def test_job_counts_of_a_queue_whose_waiting_jobs_are_all_scheduled(store: Store) -> None:
    add(store, 2, queue="later", run_at=store.now() + 600)
    assert store.job_counts() == {("later", "scheduled"): 2}


def test_queue_latency_is_the_age_of_the_oldest_due_job(store: Store) -> None:
    now = store.now()
    add(store, 1, queue="mail", run_at=now - 30)
    add(store, 1, queue="mail", run_at=now - 5)
    add(store, 1, queue="mail", run_at=now + 600)  # scheduled: not late
    add(store, 1, queue="later", run_at=now + 600)
    running = add(store, 1, queue="busy", run_at=now - 100)
    claim(store, 1, queues=["busy"], job_ids=running)
    latency = store.queue_latency(["mail", "later", "busy", "empty", "mail"])
    assert set(latency) == {"mail"}
    assert 30.0 <= latency["mail"] < 30.0 + 60.0  # the store's clock moved on a little


def test_queue_latency_of_no_queues(store: Store) -> None:
    add(store, 1)
    assert store.queue_latency([]) == {}
