"""Progress, messages and saved values written by a running attempt (fenced on it)."""

from __future__ import annotations

import json
import sqlite3

from offload.store import Store
from offload.testing import wait_for
from offload.types import MessageAdd, Outcome, ProgressUpdate, SaveValue
from tests.store.contract.helpers import Q, add, claim, run_one


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


# -- progress belongs to one attempt ---------------------------------------------------------


def _reported(store: Store, **fields: object) -> tuple[str, int]:
    c = run_one(store, max_attempts=3, **fields)
    store.job_write(progress=[ProgressUpdate(c.id, c.attempt, 4, 10, "page 4")])
    return c.id, c.attempt


def _progress(store: Store, job_id: str) -> tuple[float, float | None, str | None]:
    record = store.job_get(job_id)
    assert record is not None
    p = record.progress
    return (p.current, p.total, p.message)


def test_a_retried_job_waits_without_the_last_attempts_progress(store: Store) -> None:
    job_id, attempt = _reported(store)
    store.job_write(outcomes=[Outcome(job_id, attempt, Q.QUEUED, error="{}", delay=60)])
    assert _progress(store, job_id) == (0, None, None)
    record = store.job_get(job_id)
    assert record is not None and record.state is Q.SCHEDULED and record.progress.percent is None


def test_a_rescued_job_waits_without_the_last_attempts_progress(store: Store) -> None:
    (job_id,) = add(store, max_attempts=3)
    (c,) = claim(store, lease=0.05)
    store.job_write(progress=[ProgressUpdate(job_id, c.attempt, 4, 10, "page 4")])
    wait_for(lambda: store.lease_rescue_expired(crash_limit=3), timeout=10, what="a rescue")
    assert _progress(store, job_id) == (0, None, None)


def test_a_new_attempt_starts_with_no_progress(store: Store) -> None:
    # A queued row that holds progress (written by an older release, or by hand): the
    # claim of the next attempt clears it all the same.
    (job_id,) = add(store)
    _set_progress_by_hand(store, job_id, 9, 10, "stale")
    assert _progress(store, job_id) == (9, 10, "stale")
    (c,) = claim(store)
    assert _progress(store, job_id) == (0, None, None)
    store.job_write(progress=[ProgressUpdate(job_id, c.attempt, 1, 2)])
    assert _progress(store, job_id) == (1, 2, None)  # no message carried over either


def _set_progress_by_hand(
    store: Store, job_id: str, current: float, total: float, message: str
) -> None:
    values = (current, total, message, job_id)
    if store.url.startswith("sqlite"):
        conn = sqlite3.connect(store.url[len("sqlite:///") :])
        with conn:
            conn.execute(
                "UPDATE offload_jobs SET progress_current = ?, progress_total = ?,"
                " progress_message = ? WHERE id = ?",
                values,
            )
        conn.close()
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as pg:
        pg.execute(
            "UPDATE offload.jobs SET progress_current = %s, progress_total = %s,"
            " progress_message = %s WHERE id = %s",
            values,
        )


def test_retry_by_hand_clears_the_progress_of_a_finished_job(store: Store) -> None:
    job_id, attempt = _reported(store)
    store.job_write(outcomes=[Outcome(job_id, attempt, Q.FAILED, error="{}")])
    assert _progress(store, job_id) == (4, 10, "page 4")  # a failed job keeps where it was
    assert store.job_retry([job_id]) == [job_id]
    assert _progress(store, job_id) == (0, None, None)


def test_a_finished_job_keeps_its_last_progress(store: Store) -> None:
    job_id, attempt = _reported(store)
    store.job_write(
        progress=[ProgressUpdate(job_id, attempt, 10, 10)],
        outcomes=[Outcome(job_id, attempt, Q.SUCCEEDED, "1")],
    )
    assert _progress(store, job_id) == (10, 10, "page 4")
