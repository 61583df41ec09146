"""Groups: members, counters and completion decided in the transaction that makes the
last member final, the callback stored exactly once, members added while the group runs
(cascading), stages that start when the previous stage completes.

A member is counted ``succeeded``, or ``failed`` for any other final state (failed,
cancelled, quarantined). A group completes when it is sealed (or stopped), started, and
every member is final; completion stores the callback job in that same transaction."""

from __future__ import annotations

import json
import time

import pytest

from offload.errors import GroupClosed, GroupNotFound
from offload.ids import uuid7
from offload.store import Store
from offload.types import (
    CallbackSpec,
    ClaimRequest,
    ErrorInfo,
    GroupRow,
    GroupState,
    NewGroup,
    Outcome,
)
from tests.store.contract.helpers import Q, claim, job, state

BOOM = ErrorInfo("ValueError", "boom").to_json()
CALLBACK = CallbackSpec(task="cb", queue="default", priority=5, max_attempts=2, timeout=9.0)


def _group(
    store: Store,
    *,
    callback: CallbackSpec | None = CALLBACK,
    after: str | None = None,
    stop_on_failure: bool = False,
    name: str | None = "g",
) -> GroupRow:
    new = NewGroup(
        id=uuid7(), name=name, callback=callback,
        callback_id=uuid7() if callback is not None else None, after=after,
        stop_on_failure=stop_on_failure,
    )  # fmt: skip
    return store.group_create(new)


def _add(store: Store, group_id: str, n: int = 1, **fields: object) -> list[str]:
    return store.group_add(group_id, [job(**fields) for _ in range(n)])


def _get(store: Store, group_id: str) -> GroupRow:
    row = store.group_get(group_id)
    assert row is not None
    return row


def _finish(store: Store, ids: list[str], state: Q = Q.SUCCEEDED) -> None:
    claimed = claim(store, limit=len(ids), job_ids=ids)
    assert sorted(c.id for c in claimed) == sorted(ids)
    outcomes = [
        Outcome(c.id, c.attempt, state, result="1" if state is Q.SUCCEEDED else None,
                error=None if state is Q.SUCCEEDED else BOOM)
        for c in claimed
    ]  # fmt: skip
    assert store.job_write(outcomes=outcomes) == [True] * len(outcomes)


def _callback_kwargs(store: Store, group: GroupRow) -> dict[str, object]:
    assert group.callback_id is not None
    record = store.job_get(group.callback_id)
    assert record is not None, "the callback job is not stored"
    value = json.loads(record.kwargs)
    assert isinstance(value, dict)
    return value


def test_a_new_group_is_open_and_empty(store: Store) -> None:
    g = _group(store)
    assert (g.state, g.total, g.succeeded, g.failed, g.completed_at) == (
        GroupState.OPEN, 0, 0, 0, None
    )  # fmt: skip
    assert g.name == "g" and g.callback_task == "cb"
    assert _get(store, g.id) == g
    assert store.group_get(uuid7()) is None


def test_members_are_queued_jobs_of_their_group(store: Store) -> None:
    g = _group(store)
    ids = _add(store, g.id, 3)
    assert _get(store, g.id).total == 3
    assert all(state(store, i) is Q.QUEUED for i in ids)
    assert {store.group_of_job(i) for i in ids} == {g.id}
    assert store.group_of_job(uuid7()) is None
    assert len(claim(store)) == 3


def test_an_open_group_is_not_complete_when_its_members_are_done(store: Store) -> None:
    g = _group(store)
    first = _add(store, g.id)
    _finish(store, first)
    row = _get(store, g.id)
    assert (row.state, row.succeeded, row.completed_at) == (GroupState.OPEN, 1, None)
    assert store.job_get(g.callback_id or "") is None
    second = _add(store, g.id)  # a script adding members one by one
    _finish(store, second)
    assert _get(store, g.id).state is GroupState.OPEN


def test_sealing_a_group_whose_members_are_done_completes_it(store: Store) -> None:
    g = _group(store)
    _finish(store, _add(store, g.id, 2))
    row = store.group_seal(g.id)
    assert row.state is GroupState.COMPLETE and row.completed_at is not None
    assert _callback_kwargs(store, row) == {"group_id": g.id, "succeeded": 2, "failed": 0}
    record = store.job_get(g.callback_id or "")
    assert record is not None and record.state is Q.QUEUED
    assert (record.task, record.queue, record.priority, record.max_attempts, record.timeout) == (
        "cb", "default", 5, 2, 9.0
    )  # fmt: skip
    assert store.group_of_job(record.id) is None  # the callback is no member


def test_the_last_outcome_completes_a_sealed_group_and_stores_its_callback(store: Store) -> None:
    g = _group(store)
    ids = _add(store, g.id, 3)
    store.group_seal(g.id)
    assert _get(store, g.id).state is GroupState.SEALED
    _finish(store, ids[:1], Q.FAILED)
    _finish(store, ids[1:2])
    assert _get(store, g.id).state is GroupState.SEALED
    assert store.job_get(g.callback_id or "") is None
    _finish(store, ids[2:])
    row = _get(store, g.id)
    assert (row.state, row.total, row.succeeded, row.failed, row.done) == (
        GroupState.COMPLETE, 3, 2, 1, 3
    )  # fmt: skip
    assert _callback_kwargs(store, row) == {"group_id": g.id, "succeeded": 2, "failed": 1}


def test_the_callback_is_claimable_once_the_write_that_completed_the_group_commits(
    store: Store,
) -> None:
    g = _group(store, callback=CallbackSpec(task="t"))
    (member,) = _add(store, g.id)
    store.group_seal(g.id)
    (c,) = claim(store, job_ids=[member])
    request = ClaimRequest(worker_id="w1", queues=["default"], tasks=["t"], limit=5, lease=30)
    accepted, claimed = store.job_write_and_claim(
        claim=request, outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, result="1")]
    )
    assert accepted == [True]
    # SQLite claims it in the same transaction; PostgreSQL's one statement cannot see it.
    assert [j.id for j in claimed] + [j.id for j in claim(store)] == [g.callback_id]


def test_the_callback_is_stored_once(store: Store) -> None:
    g = _group(store)
    (member,) = _add(store, g.id)
    store.group_seal(g.id)
    (c,) = claim(store, job_ids=[member])
    ok = Outcome(c.id, c.attempt, Q.SUCCEEDED, result="1")
    assert store.job_write(outcomes=[ok]) == [True]
    assert store.job_write(outcomes=[ok]) == [False]  # a stale repeat changes nothing
    assert store.group_seal(g.id).state is GroupState.COMPLETE
    callbacks = [j for j in claim(store, tasks=["cb"]) if j.task == "cb"]
    assert [j.id for j in callbacks] == [g.callback_id]


def test_an_empty_sealed_group_completes_at_once(store: Store) -> None:
    g = _group(store)
    row = store.group_seal(g.id)
    assert (row.state, row.total) == (GroupState.COMPLETE, 0)
    assert _callback_kwargs(store, row) == {"group_id": g.id, "succeeded": 0, "failed": 0}


def test_a_group_without_callback_completes_without_storing_a_job(store: Store) -> None:
    g = _group(store, callback=None)
    _finish(store, _add(store, g.id))
    assert store.group_seal(g.id).state is GroupState.COMPLETE
    assert claim(store, tasks=["t", "cb"]) == []


def test_a_running_member_adding_members_keeps_its_sealed_group_open(store: Store) -> None:
    g = _group(store)
    (parent,) = _add(store, g.id)
    store.group_seal(g.id)
    (c,) = claim(store, job_ids=[parent])
    children = _add(store, g.id, 2)  # stored while the parent runs, before its outcome
    assert store.job_write(outcomes=[Outcome(c.id, c.attempt, Q.SUCCEEDED, result="1")]) == [True]
    row = _get(store, g.id)
    assert (row.state, row.total, row.succeeded) == (GroupState.SEALED, 3, 1)
    grandchild = _add(store, g.id)  # ... and so on, as long as a member is unfinished
    _finish(store, children)
    _finish(store, grandchild)
    row = _get(store, g.id)
    assert (row.state, row.total, row.succeeded) == (GroupState.COMPLETE, 4, 4)


def test_adding_to_a_complete_group_raises_naming_it(store: Store) -> None:
    g = _group(store)
    store.group_seal(g.id)
    with pytest.raises(GroupClosed, match=g.id):
        _add(store, g.id)
    missing = uuid7()
    with pytest.raises(GroupNotFound, match=missing):
        _add(store, missing)
    with pytest.raises(GroupNotFound, match=missing):
        store.group_seal(missing)
    assert _get(store, g.id).total == 0


def test_an_add_whose_id_is_stored_is_not_counted_again(store: Store) -> None:
    g = _group(store)
    member = job()
    assert store.group_add(g.id, [member]) == [member.id]
    again = job(id=member.id, args='["other"]')
    assert store.group_add(g.id, [again, job(id=member.id)]) == [member.id, member.id]
    assert _get(store, g.id).total == 1
    record = store.job_get(member.id)
    assert record is not None and record.args == "[]"


def test_a_member_quarantined_by_lease_rescue_counts_as_failed(store: Store) -> None:
    g = _group(store)
    (member,) = _add(store, g.id, max_attempts=5)
    store.group_seal(g.id)
    claim(store, job_ids=[member], lease=0.05)
    time.sleep(0.1)
    (rescued,) = store.lease_rescue_expired(crash_limit=3)
    assert rescued.state is Q.QUEUED
    assert _get(store, g.id).state is GroupState.SEALED  # back in the queue: unfinished
    claim(store, job_ids=[member], lease=0.05)
    time.sleep(0.1)
    (rescued,) = store.lease_rescue_expired(crash_limit=2)
    assert rescued.state is Q.QUARANTINED
    row = _get(store, g.id)
    assert (row.state, row.succeeded, row.failed) == (GroupState.COMPLETE, 0, 1)


def test_cancelling_a_queued_member_counts_it_failed(store: Store) -> None:
    g = _group(store)
    first, second = _add(store, g.id, 2)
    store.group_seal(g.id)
    _finish(store, [first])
    assert store.job_cancel([second]) == {second: Q.CANCELLED}
    row = _get(store, g.id)
    assert (row.state, row.succeeded, row.failed) == (GroupState.COMPLETE, 1, 1)
    assert _callback_kwargs(store, row)["failed"] == 1


def test_deleting_an_unfinished_member_removes_it_from_the_count(store: Store) -> None:
    g = _group(store)
    first, second = _add(store, g.id, 2)
    store.group_seal(g.id)
    _finish(store, [first])
    assert store.job_delete([second]) == [second]
    row = _get(store, g.id)
    assert (row.state, row.total, row.succeeded) == (GroupState.COMPLETE, 1, 1)


def test_retrying_a_finished_member_of_an_unfinished_group_counts_it_again(
    store: Store,
) -> None:
    g = _group(store)
    first, second = _add(store, g.id, 2)
    store.group_seal(g.id)
    _finish(store, [first], Q.FAILED)
    assert _get(store, g.id).failed == 1
    assert store.job_retry([first]) == [first]
    row = _get(store, g.id)
    assert (row.succeeded, row.failed, row.state) == (0, 0, GroupState.SEALED)
    _finish(store, [first, second])
    row = _get(store, g.id)
    assert (row.state, row.succeeded, row.failed) == (GroupState.COMPLETE, 2, 0)


def test_retrying_a_member_of_a_complete_group_leaves_the_group_alone(store: Store) -> None:
    g = _group(store)
    (member,) = _add(store, g.id)
    store.group_seal(g.id)
    _finish(store, [member], Q.FAILED)
    before = _get(store, g.id)
    assert store.job_retry([member]) == [member]
    _finish(store, [member])
    assert _get(store, g.id) == before


def test_a_stage_waits_for_the_previous_one_without_runnable_members(store: Store) -> None:
    first = _group(store, name="split")
    second = _group(store, name="post", after=first.id)
    assert second.state is GroupState.WAITING and second.after == first.id
    (a,) = _add(store, first.id)
    (b,) = _add(store, second.id)
    store.group_seal(second.id)
    assert state(store, b) is Q.WAITING
    assert [c.id for c in claim(store)] == [a]  # the waiting member is not claimable
    store.job_write(outcomes=[Outcome(a, 1, Q.SUCCEEDED, result="1")])
    assert _get(store, first.id).state is GroupState.OPEN  # not sealed: not complete
    assert state(store, b) is Q.WAITING
    store.group_seal(first.id)
    assert _get(store, first.id).state is GroupState.COMPLETE
    assert _get(store, second.id).state is GroupState.SEALED
    assert state(store, b) is Q.QUEUED
    _finish(store, [b])
    assert _get(store, second.id).state is GroupState.COMPLETE


def test_a_failed_member_stops_the_next_stage_when_its_group_says_so(store: Store) -> None:
    first = _group(store, stop_on_failure=True)
    second = _group(store, after=first.id)
    third = _group(store, after=second.id)
    (a,) = _add(store, first.id)
    waiting = _add(store, second.id, 2)
    (c,) = _add(store, third.id)
    store.group_seal(first.id)
    _finish(store, [a], Q.FAILED)
    row = _get(store, second.id)
    assert (row.state, row.stopped, row.failed, row.total) == (GroupState.COMPLETE, True, 2, 2)
    assert all(state(store, i) is Q.CANCELLED for i in waiting)
    assert _callback_kwargs(store, row) == {"group_id": second.id, "succeeded": 0, "failed": 2}
    assert "stage" in store.job_events(waiting[0])[-1].message
    # The second group does not stop on failure: the third runs once it is sealed.
    assert state(store, c) is Q.QUEUED
    with pytest.raises(GroupClosed, match=second.id):
        _add(store, second.id)


def test_a_failed_member_does_not_stop_the_next_stage_by_default(store: Store) -> None:
    first = _group(store)
    second = _group(store, after=first.id)
    (a,) = _add(store, first.id)
    (b,) = _add(store, second.id)
    store.group_seal(first.id)
    _finish(store, [a], Q.FAILED)
    assert state(store, b) is Q.QUEUED


def test_a_stage_after_a_complete_group_starts_at_once(store: Store) -> None:
    first = _group(store)
    store.group_seal(first.id)
    second = _group(store, after=first.id)
    assert second.state is GroupState.OPEN
    (b,) = _add(store, second.id)
    assert state(store, b) is Q.QUEUED
    with pytest.raises(GroupNotFound, match="nope"):
        _group(store, after="nope")


def test_a_waiting_member_can_be_cancelled(store: Store) -> None:
    first = _group(store)
    second = _group(store, after=first.id)
    (b,) = _add(store, second.id)
    assert store.job_cancel([b]) == {b: Q.CANCELLED}
    assert _get(store, second.id).failed == 1


def test_groups_are_listed_newest_first(store: Store) -> None:
    ids = [_group(store, name=f"g{n}").id for n in range(3)]
    assert [g.id for g in store.group_list(limit=10)][:3] == ids[::-1]
    assert [g.id for g in store.group_list(limit=10, before_id=ids[2])][:2] == ids[1::-1]


def test_stopped_stages_stop_the_stages_after_them_in_turn(store: Store) -> None:
    first = _group(store, stop_on_failure=True)
    second = _group(store, after=first.id, stop_on_failure=True)
    third = _group(store, after=second.id)
    (a,) = _add(store, first.id)
    _add(store, second.id, 2)
    cancelled_before = _add(store, third.id, 3)[0]
    assert store.job_cancel([cancelled_before]) == {cancelled_before: Q.CANCELLED}
    store.group_seal(first.id)
    _finish(store, [a], Q.FAILED)
    second_row, third_row = _get(store, second.id), _get(store, third.id)
    assert (second_row.state, second_row.failed, second_row.total) == (GroupState.COMPLETE, 2, 2)
    # The member cancelled by hand while it waited is counted once, not twice.
    assert (third_row.state, third_row.failed, third_row.total) == (GroupState.COMPLETE, 3, 3)
    assert _callback_kwargs(store, third_row) == {"group_id": third.id, "succeeded": 0, "failed": 3}


def test_a_member_asked_to_cancel_whose_run_fails_counts_as_failed(store: Store) -> None:
    group = _group(store)
    (member,) = _add(store, group.id, max_attempts=3)
    store.group_seal(group.id)
    (c,) = claim(store, job_ids=[member])
    store.job_cancel([member])
    retry = Outcome(c.id, c.attempt, Q.QUEUED, error=BOOM, delay=0.0)
    assert store.job_write(outcomes=[retry]) == [True]
    assert state(store, member) is Q.CANCELLED
    row = _get(store, group.id)
    assert (row.state, row.failed) == (GroupState.COMPLETE, 1)
