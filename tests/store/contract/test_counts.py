"""What metrics read at scrape time: jobs by queue and state, and how late each queue runs."""

from __future__ import annotations

from offload.store import Store
from offload.types import JobFilter, JobState, Outcome
from tests.store.contract.helpers import add, claim
from tests.store.contract.test_prune import age


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


def test_job_finished_by_minute_counts_each_outcome_in_its_minute(store: Store) -> None:
    _finish(store, "mail", JobState.SUCCEEDED, 3)
    _finish(store, "mail", JobState.FAILED, 2)
    _finish(store, "media", JobState.CANCELLED, 1)
    add(store, 2)  # waiting jobs are not counted
    running = add(store, 1, queue="busy")
    claim(store, 1, queues=["busy"], job_ids=running)
    now = store.now()
    got = store.job_finished_by_minute(5)
    minutes = {minute for minute, _ in got}
    # Every job above finished in this minute or, if the minute turned meanwhile, the one before.
    assert all(m % 60 == 0 and now - 120 < m <= now for m in minutes), (got, now)
    by_state: dict[str, int] = {}
    for (_, state), n in got.items():
        by_state[state] = by_state.get(state, 0) + n
    assert by_state == {"succeeded": 3, "failed": 2, "cancelled": 1}


def test_job_finished_by_minute_leaves_out_older_minutes(store: Store) -> None:
    ids = add(store, 4)
    claimed = claim(store, 4, job_ids=ids)
    store.job_write(
        outcomes=[
            Outcome(job_id=c.id, attempt=c.attempt, state=JobState.SUCCEEDED) for c in claimed
        ]
    )
    age(store, ids[0], 10 * 60)  # ten minutes ago
    age(store, ids[1], 3 * 3600)  # three hours ago
    now = store.now()
    got = store.job_finished_by_minute(30)
    assert sum(got.values()) == 3
    ten_ago = (now - 600) // 60 * 60
    assert any(minute in (ten_ago, ten_ago - 60) and n == 1 for (minute, _), n in got.items())
    assert sum(store.job_finished_by_minute(24 * 60).values()) == 4
    assert sum(store.job_finished_by_minute(5).values()) == 2


def test_job_finished_by_minute_refuses_a_bad_window(store: Store) -> None:
    import pytest

    from offload.errors import ConfigError

    for bad in (0, -1, 10_081, 1.5, True, "60"):
        with pytest.raises(ConfigError, match="minutes"):
            store.job_finished_by_minute(bad)  # type: ignore[arg-type]


def _truth(store: Store) -> dict[tuple[str, str], int]:
    """Jobs by queue and state, counted from every job row."""
    out: dict[tuple[str, str], int] = {}
    for row in store.job_list(JobFilter(limit=100_000)):
        out[row.queue, row.state.value] = out.get((row.queue, row.state.value), 0) + 1
    return out


def test_job_counts_follow_every_change_of_a_job(store: Store) -> None:
    import time

    steps = []
    a = add(store, 5, queue="a")
    add(store, 1, queue="a", unique_key="k")
    add(store, 1, queue="a", unique_key="k")  # deduplicated: no new job
    add(store, 2, queue="b", run_at=store.now() + 3600)
    steps.append("insert")
    assert store.job_counts() == _truth(store), steps
    claimed = claim(store, 4, queues=["a"], job_ids=a[:4])
    steps.append("claim")
    assert store.job_counts() == _truth(store), steps
    store.job_write(
        outcomes=[
            Outcome(job_id=claimed[0].id, attempt=claimed[0].attempt, state=JobState.SUCCEEDED),
            Outcome(job_id=claimed[1].id, attempt=claimed[1].attempt, state=JobState.FAILED),
            Outcome(job_id=claimed[2].id, attempt=claimed[2].attempt, state=JobState.QUEUED),
        ]
    )
    steps.append("outcomes")
    assert store.job_counts() == _truth(store), steps
    store.job_cancel([a[4], claimed[3].id])  # a queued one ends, a running one is asked
    steps.append("cancel")
    assert store.job_counts() == _truth(store), steps
    store.job_retry([claimed[0].id, claimed[1].id, a[4]])
    steps.append("retry")
    assert store.job_counts() == _truth(store), steps
    short = claim(store, 1, queues=["a"], lease=0.05)
    assert short
    time.sleep(0.2)
    assert store.lease_rescue_expired(crash_limit=5)
    steps.append("rescue")
    assert store.job_counts() == _truth(store), steps
    store.job_delete([a[4]])
    steps.append("delete")
    assert store.job_counts() == _truth(store), steps
    done = claim(store, 10, queues=["a"])
    store.job_write(
        outcomes=[Outcome(job_id=c.id, attempt=c.attempt, state=JobState.SUCCEEDED) for c in done]
    )
    assert store.job_prune(older_than=0, states=[JobState.SUCCEEDED]) > 0
    steps.append("prune")
    assert store.job_counts() == _truth(store), steps


def test_queue_latency_looks_at_every_priority(store: Store) -> None:
    now = store.now()
    add(store, 1, queue="mail", priority=5, run_at=now - 10)
    add(store, 1, queue="mail", priority=0, run_at=now - 20)
    add(store, 1, queue="mail", priority=-3, run_at=now - 90)  # the oldest, lowest priority
    add(store, 1, queue="mail", priority=9, run_at=now + 600)  # scheduled
    latency = store.queue_latency(["mail"])
    assert 90.0 <= latency["mail"] < 90.0 + 60.0


def test_job_recount_keeps_counts_that_were_right(store: Store) -> None:
    _finish(store, "mail", JobState.SUCCEEDED, 3)
    _finish(store, "media", JobState.FAILED, 1)
    add(store, 2, queue="mail")
    add(store, 1, queue="mail", run_at=store.now() + 600)
    before = store.job_counts()

    store.job_recount()

    assert store.job_counts() == before == _truth(store)
