"""What both stores must agree on about groups, written once: the stored columns of a
group and how a row is read, its state, the errors for a missing or closed group, and the
state a new member starts in (see ``rules.py`` for the jobs' rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from offload.errors import (
    ConfigError,
    GroupClosed,
    GroupNotFound,
    StoreError,
)
from offload.types import (
    GroupRow,
    GroupState,
    JobState,
    NewJob,
)

# -- groups ------------------------------------------------------------------------------------
# Counters and completion live in each backend's migration 0005 (triggers), so that every
# statement that makes a member final decides completion in its own transaction.

#: Stored columns of a GroupRow, in the order :func:`group_row` reads them.
GROUP_COLUMNS = (
    "id, name, created_at, sealed, started, stopped, after_id, stop_on_failure, total,"
    " succeeded, failed, completed_at, callback_task, callback_id"
)


def group_state(sealed: bool, started: bool, completed: bool) -> GroupState:
    """The state of a group from its stored flags."""
    if completed:
        return GroupState.COMPLETE
    if not started:
        return GroupState.WAITING
    return GroupState.SEALED if sealed else GroupState.OPEN


def group_row(r: Sequence[Any], where: str) -> GroupRow:
    """A GroupRow from a row of :data:`GROUP_COLUMNS`, every value checked: a row written
    by hand that holds something else raises StoreError naming the group and the column
    (``where``: the store's location)."""
    names = [n.strip() for n in GROUP_COLUMNS.split(",")]
    values = dict(zip(names, r, strict=True))
    gid = values["id"]

    def bad(column: str, expected: str) -> StoreError:
        return StoreError(
            f"{where}: group {gid!r} stores {values[column]!r} as {column}, expected {expected}"
        )

    if not isinstance(gid, str) or not gid:
        raise bad("id", "a non-empty text")
    for column in ("name", "after_id", "callback_task", "callback_id"):
        if values[column] is not None and not isinstance(values[column], str):
            raise bad(column, "a text or NULL")
    counts = {}
    for column in ("total", "succeeded", "failed"):
        value = values[column]
        if type(value) is not int or value < 0:
            raise bad(column, "a whole number from 0")
        counts[column] = value
    flags = {}
    for column in ("sealed", "started", "stopped", "stop_on_failure"):
        value = values[column]
        if value not in (0, 1) or isinstance(value, float):
            raise bad(column, "a boolean")
        flags[column] = bool(value)
    for column in ("created_at", "completed_at"):
        value = values[column]
        if (value is not None or column == "created_at") and (
            not isinstance(value, int | float) or isinstance(value, bool)
        ):
            raise bad(column, "a time in seconds")
    completed = values["completed_at"]
    return GroupRow(
        id=gid, name=values["name"],
        state=group_state(flags["sealed"], flags["started"], completed is not None),
        created_at=float(values["created_at"]),
        completed_at=float(completed) if completed is not None else None,
        total=counts["total"], succeeded=counts["succeeded"], failed=counts["failed"],
        after=values["after_id"], stop_on_failure=flags["stop_on_failure"],
        stopped=flags["stopped"], callback_task=values["callback_task"],
        callback_id=values["callback_id"],
    )  # fmt: skip


def group_missing(group_id: str, role: str = "") -> GroupNotFound:
    return GroupNotFound(f"no group with id {group_id!r}{role}")


def group_closed(row: GroupRow) -> GroupClosed:
    """The error of an add into a complete group, naming it and why it is complete."""
    label = f"{row.id} ({row.name})" if row.name else row.id
    why = (
        f"stopped: the stage before it (group {row.after}) had failed members"
        if row.stopped
        else f"{row.succeeded} succeeded, {row.failed} failed"
    )
    return GroupClosed(
        f"group {label} is complete ({why}); no member can be added to it: add members "
        "before it is sealed, or from a member of it that is still running"
    )


def check_members(group_id: str, jobs: Sequence[NewJob]) -> None:
    """Refuse members that cannot be counted: a member with a unique key may be merged
    into another job that is no member."""
    for n, j in enumerate(jobs):
        if j.unique_key is not None:
            raise ConfigError(
                f"member {n} added to group {group_id!r} has unique_key {j.unique_key!r}: "
                "members of a group cannot have a unique key (a retried member that adds "
                "members adds the same ones again, which the store recognises by their ids)"
            )


def member_state(started: bool) -> str:
    """The stored state of a member added to a group that has (not) started."""
    return JobState.QUEUED.value if started else JobState.WAITING.value
