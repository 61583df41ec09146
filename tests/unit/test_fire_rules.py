"""The fire-record rules both stores keep: what a batch of fires may hold, and which
stored rows read back as fire records (rows written by hand are left out, never raised)."""

from __future__ import annotations

import math

import pytest

from offload.store.rules import MAX_FIRE_AT, check_fires, fire_record, last_fires, unique_fires
from offload.types import FireRecord, NewJob, ScheduleFire

T = 1_800_000_000


def fire(name: object = "a", at: object = T) -> ScheduleFire:
    return ScheduleFire(name, at, NewJob("j", "t"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [1.0 * T, T + 0.5, True, "1800000000", -1, MAX_FIRE_AT + 1, None, math.nan]
)
def test_a_fire_time_must_be_whole_seconds_in_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"fires\[1\] of schedule 'a': expected fire_at"):
        check_fires([fire(), fire(at=bad)])


@pytest.mark.parametrize("bad", ["", "x" * 201, None, 7, b"a"])
def test_a_schedule_name_must_be_short_text(bad: object) -> None:
    with pytest.raises(ValueError, match=r"fires\[0\]: expected schedule"):
        check_fires([fire(name=bad)])


def test_twins_in_a_batch_count_once() -> None:
    assert unique_fires([fire(), fire("b"), fire(), fire(at=T + 1)]) == [True, True, False, True]


@pytest.mark.parametrize(
    "row",
    [
        (None, T, "j", 1.0),
        ("", T, "j", 1.0),
        ("a", "soon", "j", 1.0),
        ("a", T + 0.5, "j", 1.0),
        ("a", True, "j", 1.0),
        ("a", -5, "j", 1.0),
        ("a", T, None, 1.0),
        ("a", T, 7, 1.0),
        ("a", T, "j", "yesterday"),
        ("a", T, "j", math.inf),
        ("a", T, "j", False),
    ],
)
def test_rows_written_by_hand_do_not_read_as_fire_records(row: tuple[object, ...]) -> None:
    assert fire_record(row) is None


def test_readable_rows_give_the_latest_fire_of_each_schedule() -> None:
    rows = [("b", T, "j1", 1.0), ("a", T + 60, "j2", 2), ("a", 1.0 * T, "j3", 3.0)]
    rows.append(("a", "garbage", "j4", 4.0))
    assert fire_record(("a", 1.0 * T, "j3", 3)) == FireRecord("a", T, "j3", 3.0)
    assert last_fires(rows) == {
        "a": FireRecord("a", T + 60, "j2", 2.0),
        "b": FireRecord("b", T, "j1", 1.0),
    }
