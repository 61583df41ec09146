"""Group rows read back from the store are checked at that boundary: a value a hand-made
row holds that no group could (a count that is not a whole number, a flag that is not a
boolean) raises StoreError naming the group and the column, never a wrong snapshot."""

from __future__ import annotations

import sqlite3

import pytest

from offload import Offload
from offload.errors import StoreError
from offload.store.group_rules import group_row
from offload.types import GroupState

GOOD = ("g1", "name", 1.0, 1, 1, 0, None, 0, 3, 2, 1, 5.0, "cb", "c1")


def test_a_stored_row_becomes_a_snapshot() -> None:
    row = group_row(GOOD, "here")
    assert (row.state, row.done, row.total, row.callback_task) == (
        GroupState.COMPLETE, 3, 3, "cb"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("index", "value", "column"),
    [(8, "3", "total"), (9, -1, "succeeded"), (10, 1.5, "failed"), (3, 2, "sealed"),
     (2, "yesterday", "created_at"), (11, b"x", "completed_at"), (1, 7, "name"),
     (0, "", "id")],
)  # fmt: skip
def test_a_bad_stored_value_names_the_group_and_column(
    index: int, value: object, column: str
) -> None:
    values = list(GOOD)
    values[index] = value
    with pytest.raises(StoreError, match=rf"here: group .* stores .* as {column}, expected"):
        group_row(values, "here")


def test_the_sqlite_store_refuses_a_hand_made_row(sqlite_url: str) -> None:
    app = Offload(sqlite_url)
    try:
        g = app.group(name="g")
        path = sqlite_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE offload_groups SET total = 'many' WHERE id = ?", (g.id,))
        with pytest.raises(StoreError, match=f"group '{g.id}' stores 'many' as total"):
            g.refresh()
    finally:
        app.close()
