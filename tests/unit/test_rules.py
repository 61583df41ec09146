"""store.rules: the derived ``scheduled`` state and process statuses, as both stores read them."""

from __future__ import annotations

import json

import pytest

from offload.store.rules import GONE_AFTER_BEATS, derived_state, process_statuses
from offload.types import JobState, ProcessInfo

NOW = 1_000_000.0

# -- derived_state -----------------------------------------------------------------------


def test_queued_job_due_later_reads_as_scheduled() -> None:
    assert derived_state(JobState.QUEUED, NOW + 0.001, NOW) is JobState.SCHEDULED
    assert derived_state(JobState.QUEUED, NOW + 3600, NOW) is JobState.SCHEDULED


def test_queued_job_that_is_due_reads_as_queued() -> None:
    assert derived_state(JobState.QUEUED, NOW, NOW) is JobState.QUEUED  # due exactly now
    assert derived_state(JobState.QUEUED, NOW - 5, NOW) is JobState.QUEUED


@pytest.mark.parametrize("stored", [s for s in JobState if s is not JobState.QUEUED])
def test_other_states_read_as_stored_whatever_run_at_says(stored: JobState) -> None:
    assert derived_state(stored, NOW + 3600, NOW) is stored
    assert derived_state(stored, NOW - 3600, NOW) is stored


# -- process_statuses --------------------------------------------------------------------


def row(
    pid: int,
    *,
    silent: float,
    info: str | dict[str, object] = "{}",
    parent: int | None = None,
    stopped: bool = False,
    status: str = "running",
) -> ProcessInfo:
    """A process row whose last heartbeat was ``silent`` seconds before NOW."""
    return ProcessInfo(
        id=f"p{pid}", kind="child" if parent else "supervisor", host="h", pid=pid,
        parent_id=f"p{parent}" if parent else None, started_at=NOW - 10_000,
        heartbeat_at=NOW - silent, stopped_at=NOW - 1 if stopped else None,
        info=info if isinstance(info, str) else json.dumps(info), status=status,
    )  # fmt: skip


def statuses(rows: list[ProcessInfo], gone_after: float = 10.0) -> dict[str, str]:
    return {p.id: p.status for p in process_statuses(rows, NOW, gone_after)}


def test_gone_after_beats_is_three() -> None:
    assert GONE_AFTER_BEATS == 3


def test_without_a_published_interval_gone_after_applies() -> None:
    rows = [row(1, silent=5), row(2, silent=10), row(3, silent=10.5), row(4, silent=1000)]
    assert statuses(rows, gone_after=10) == {
        "p1": "running",
        "p2": "running",  # exactly gone_after is not yet gone
        "p3": "gone",
        "p4": "gone",
    }


def test_stopped_wins_over_fresh_and_silent_heartbeats() -> None:
    rows = [row(1, silent=0, stopped=True), row(2, silent=10_000, stopped=True)]
    assert statuses(rows) == {"p1": "stopped", "p2": "stopped"}


def test_a_process_is_judged_by_three_of_its_own_published_intervals() -> None:
    slow = {"heartbeat": 30}
    rows = [
        row(1, silent=60, info=slow),
        row(2, silent=90, info=slow),
        row(3, silent=91, info=slow),
    ]
    # gone_after (10 s) would call all three gone; their own 30 s interval gives 90 s.
    assert statuses(rows, gone_after=10) == {"p1": "running", "p2": "running", "p3": "gone"}


def test_a_short_published_interval_is_stricter_than_gone_after() -> None:
    fast = {"heartbeat": 0.5, "other": "ignored"}
    rows = [row(1, silent=1.4, info=fast), row(2, silent=1.6, info=fast)]
    assert statuses(rows, gone_after=60) == {"p1": "running", "p2": "gone"}


def test_a_child_is_judged_by_its_parents_interval() -> None:
    rows = [
        row(1, silent=0, info={"heartbeat": 30}),
        row(2, silent=60, parent=1),
        row(3, silent=95, parent=1),
    ]
    assert statuses(rows, gone_after=10) == {"p1": "running", "p2": "running", "p3": "gone"}


def test_a_child_with_its_own_interval_uses_it() -> None:
    rows = [
        row(1, silent=0, info={"heartbeat": 30}),
        row(2, silent=6, parent=1, info={"heartbeat": 1}),
    ]
    assert statuses(rows, gone_after=60) == {"p1": "running", "p2": "gone"}


def test_a_child_whose_parent_is_not_listed_falls_back_to_gone_after() -> None:
    assert statuses([row(2, silent=60, parent=1)], gone_after=10) == {"p2": "gone"}
    assert statuses([row(2, silent=60, parent=1)], gone_after=100) == {"p2": "running"}


@pytest.mark.parametrize(
    "info",
    [
        "not json",
        "{",
        "null",
        "[30]",
        '"30"',
        "{}",
        "",
        '{"heartbeat": "30"}',
        '{"heartbeat": true}',
        '{"heartbeat": null}',
        '{"heartbeat": 0}',
        '{"heartbeat": -30}',
        '{"heartbeat": 1e12}',
        '{"heartbeat": NaN}',
        '{"heartbeat": Infinity}',
        '{"heartbeat": [30]}',
        '{"interval": 30}',
        "[" * 100_000,
    ],
)
def test_malformed_info_is_ignored(info: str) -> None:
    # With a usable 30 s interval p1 would be running (60 < 90); ignored, gone_after=10 applies.
    rows = [row(1, silent=60, info=info), row(3, silent=5, info=info)]
    assert statuses(rows, gone_after=10) == {"p1": "gone", "p3": "running"}
    # A child of such a parent falls back to gone_after too.
    parent_and_child = [row(1, silent=0, info=info), row(2, silent=60, parent=1)]
    assert statuses(parent_and_child, gone_after=10)["p2"] == "gone"


def test_rows_keep_their_order_and_only_status_changes() -> None:
    rows = [
        row(3, silent=0, status="gone"),
        row(1, silent=100),
        row(2, silent=0, stopped=True),
        row(4, silent=0),
    ]
    out = process_statuses(rows, NOW, 10.0)
    assert [p.id for p in out] == ["p3", "p1", "p2", "p4"]
    assert [p.status for p in out] == ["running", "gone", "stopped", "running"]
    for before, after in zip(rows, out, strict=True):
        assert after == ProcessInfo(**{**_fields(before), "status": after.status})
    assert out[3] is rows[3]  # already right: the same row back


def test_no_rows_gives_no_rows() -> None:
    assert process_statuses([], NOW, 10.0) == []


def _fields(p: ProcessInfo) -> dict[str, object]:
    return {name: getattr(p, name) for name in ProcessInfo.__dataclass_fields__}


def test_admit_limited_counts_those_it_admits_and_names_full_keys() -> None:
    from offload.store.rules import admit_limited

    picked = [("a", "k", 2), ("b", None, 0), ("c", "k", 2), ("d", "k", 2), ("e", "j", 1)]
    assert admit_limited(picked, {"j": 1}) == (["a", "b", "c"], {"k", "j"})
    # A limit written by hand as something else is the strictest one, never a crash.
    assert admit_limited([("x", "k", "lots"), ("y", "k", None)], {}) == (["x"], {"k"})
