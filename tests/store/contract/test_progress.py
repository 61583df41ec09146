"""Progress, messages and saved values written by a running attempt (fenced on it)."""

from __future__ import annotations

import json

from offload.store import Store
from offload.types import MessageAdd, Outcome, ProgressUpdate, SaveValue
from tests.store.contract.helpers import Q, claim, run_one


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
