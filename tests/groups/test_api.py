"""The group API in-process, on both stores: ``app.group``, ``add``/``add_many``/``map``,
sealing with ``with``, members adding members, stages, the callback, ``wait``; and the
same through ``testing.run_pending`` and inline mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from offload import GroupClosed, GroupNotFound, GroupState, JobContext, JobState, Offload
from offload.errors import ConfigError, WaitTimeout
from offload.groups import derived_id
from offload.testing import run_pending


@pytest.fixture
def app(store_url: str) -> Iterator[Offload]:
    app = Offload(store_url, lease=5.0, heartbeat=1.0)
    app.migrate()
    yield app
    app.close()


def _tasks(app: Offload) -> tuple[Any, Any, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    @app.task(name="double", retries=0)
    def double(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return 2 * x

    @app.task(name="report")
    def report(group_id: str, succeeded: int, failed: int) -> None:
        calls.append({"group_id": group_id, "succeeded": succeeded, "failed": failed})

    return double, report, calls


def test_a_group_runs_its_callback_once_with_the_counts(app: Offload) -> None:
    double, report, calls = _tasks(app)
    with app.group(name="g", then=report) as g:
        g.add(double, 1)
        g.add_many(double, [(2,), (-1,), {"x": 3}])
        assert g.refresh().state is GroupState.OPEN
    assert g.state is GroupState.SEALED and g.progress == (0, 4)
    assert run_pending(app) == 5  # four members, then the callback
    assert calls == [{"group_id": g.id, "succeeded": 3, "failed": 1}]
    g.wait(timeout=5)
    assert (g.complete, g.progress, g.succeeded, g.failed) == (True, (4, 4), 3, 1)
    assert app.get_job(g.callback_id or "").state is JobState.SUCCEEDED
    assert run_pending(app) == 0


def test_a_block_that_raises_leaves_the_group_open(app: Offload) -> None:
    double, report, _ = _tasks(app)
    with pytest.raises(RuntimeError), app.group(then=report) as g:
        g.add(double, 1)
        raise RuntimeError("the script failed half way")
    assert g.refresh().state is GroupState.OPEN
    run_pending(app)
    assert g.refresh().state is GroupState.OPEN and g.progress == (1, 1)
    g.seal()
    assert g.state is GroupState.COMPLETE


def test_members_add_members_from_inside_the_group(app: Offload) -> None:
    _, report, calls = _tasks(app)

    @app.task(name="split", context=True)
    def split(ctx: JobContext, lo: int, hi: int) -> int:
        if hi - lo > 2:
            group = ctx.group
            assert group is not None
            mid = (lo + hi) // 2
            group.add(split, lo, mid)
            group.add(split, mid, hi)
        return hi - lo

    with app.group(then=report) as g:
        g.add(split, 0, 16)
    run_pending(app)
    # 0-16 -> 2 x 8 -> 4 x 4 -> 8 x 2: 1 + 2 + 4 + 8 members.
    assert g.wait(timeout=5).progress == (15, 15)
    assert calls == [{"group_id": g.id, "succeeded": 15, "failed": 0}]


def test_adding_to_a_complete_group_raises_naming_it(app: Offload) -> None:
    double, report, _ = _tasks(app)
    with app.group(name="done", then=report) as g:
        g.add(double, 1)
    run_pending(app)
    with pytest.raises(GroupClosed, match=rf"group {g.id} \(done\) is complete"):
        g.add(double, 2)
    with pytest.raises(GroupNotFound):
        app.get_group("nope")


def test_stages_run_one_after_the_other_without_holding_a_slot(app: Offload) -> None:
    double, report, calls = _tasks(app)
    first = app.group(name="chunks", then=report)
    second = app.group(name="post", then=report, after=first)
    assert second.state is GroupState.WAITING
    (post,) = second.add_many(double, [(10,)])
    second.seal()
    assert post.state is JobState.WAITING
    assert post.refresh().state is JobState.WAITING
    first.add_many(double, [(1,), (2,)])
    first.seal()
    assert run_pending(app) == 5  # two chunks, their callback, the post member, its callback
    assert [c["group_id"] for c in calls] == [first.id, second.id]
    assert post.refresh().result() == 20


def test_a_failed_stage_stops_the_next_when_asked(app: Offload) -> None:
    double, report, calls = _tasks(app)
    with app.group(then=report, stop_on_failure=True) as first:
        first.add(double, -1)
    second = app.group(then=report, after=first)
    (post,) = second.add_many(double, [(1,)])
    run_pending(app)
    assert post.refresh().state is JobState.CANCELLED
    assert second.refresh().record.stopped and second.complete
    assert calls[-1] == {"group_id": second.id, "succeeded": 0, "failed": 1}


def test_map_fans_items_out_in_chunks_in_one_group(app: Offload) -> None:
    _, report, calls = _tasks(app)

    @app.task(name="total")
    def total(items: list[int]) -> int:
        return sum(items)

    g = total.map(range(250), chunk=100, then=report)
    assert g.state is GroupState.SEALED and g.total == 3
    run_pending(app)
    assert calls == [{"group_id": g.id, "succeeded": 3, "failed": 0}]
    with pytest.raises(ConfigError, match="chunk"):
        total.map([1], chunk=0)


def test_wait_times_out_naming_the_progress(app: Offload) -> None:
    double, _, _ = _tasks(app)
    with app.group() as g:
        g.add(double, 1)
    with pytest.raises(WaitTimeout, match=r"still sealed \(0/1 done\)"):
        g.wait(timeout=0.05)
    run_pending(app)
    assert asyncio.run(g.await_complete(timeout=5)).complete


def test_bad_arguments_are_refused_with_a_clear_error(app: Offload) -> None:
    double, _, _ = _tasks(app)

    @app.task(name="cb_without_counts")
    def cb_without_counts(group_id: str) -> None: ...

    with pytest.raises(ConfigError, match="group_id, succeeded and failed"):
        app.group(then=cb_without_counts)
    with pytest.raises(ConfigError, match="then to be a task"):
        app.group(then=print)  # type: ignore[arg-type]
    with pytest.raises(GroupNotFound, match="stage before"):
        app.group(after="nope")
    g = app.group()
    with pytest.raises(ConfigError, match="unique key"):
        g.add(double.using(unique_key="k"), 1)


def test_derived_ids_are_stable_uuids_near_their_parent() -> None:
    parent = "01932d8e-7c4a-7000-8000-000000000000"
    one = derived_id(parent, "g1", 1)
    assert one == derived_id(parent, "g1", 1) != derived_id(parent, "g1", 2)
    assert one != derived_id(parent, "g2", 1)  # a new group made by a rerun: new ids
    assert one[:13] == parent[:13] and one[14] == "8" and len(one) == 36


def test_a_rerun_job_adds_the_same_members_once(app: Offload) -> None:
    double, _, _ = _tasks(app)
    attempts: list[int] = []

    @app.task(name="adder", context=True, retries=1, backoff=0)
    def adder(ctx: JobContext) -> None:
        group = ctx.group
        assert group is not None
        group.add_many(double, [(1,), (2,)])
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("fails after adding; its retry adds the same members")

    with app.group() as g:
        g.add(adder)
    run_pending(app)  # the first run fails; its retry is due at once and runs too
    g.wait(timeout=5)
    assert attempts == [1, 2]
    assert (g.total, g.succeeded, g.failed) == (3, 3, 0)


def test_inline_mode_runs_members_callbacks_and_stages(tmp_path: Any) -> None:
    app = Offload(f"sqlite:///{tmp_path / 'inline.db'}", inline=True)
    double, report, calls = _tasks(app)
    try:
        with app.group(then=report) as first:
            first.add(double, 1)
        second = app.group(then=report, after=first)
        with second:
            (job,) = second.add_many(double, [(4,)])
        assert calls == [
            {"group_id": first.id, "succeeded": 1, "failed": 0},
            {"group_id": second.id, "succeeded": 1, "failed": 0},
        ]
        assert job.refresh().result() == 8
    finally:
        app.close()
