"""Which fire times to fire now: pure functions of a schedule, the last fire time handled
and the store's clock, so every rule here is tested with fixed times (no waiting).

A scheduler keeps, for each schedule, a *cursor*: the latest fire time it has handled
(fired, found already recorded, or let go by the catch-up policy). At start the cursor is
the schedule's latest fire recorded in the store, or now for a schedule never fired (a new
schedule starts from now, not from the epoch). Each time fires fall due, :func:`plan`
picks, among the fire times in ``(cursor, now]``:

* the *late* ones, due at most :data:`LATE_GRACE` seconds ago and after the scheduler
  started: all of them (a scheduler that
  was busy, or could not reach the store for a moment, fires what it owes);
* the *missed* ones, due longer ago (downtime): as the catch-up policy says: ``latest``
  the latest one, unless a late fire already runs; ``all`` the latest ``limit``;
  ``none`` nothing.

Every fire that fell due before the scheduler started counts as missed: the time since
the store's last fire was downtime. Fire times are never enumerated beyond what is
fired, so a schedule that fires every second and was down for a year costs no more than
one that was not.
"""

from __future__ import annotations

from offload.scheduling.cron import Spec
from offload.scheduling.periodic import CatchUp

#: Seconds a fire may be overdue at a running scheduler and still count as late, not
#: missed: it fires whatever the catch-up policy.
LATE_GRACE = 60


def plan(
    spec: Spec, cursor: int, now: int, *, policy: CatchUp, limit: int, late_from: int
) -> list[int]:
    """The fire times in ``(cursor, now]`` to fire now, ascending: every one from
    ``late_from`` on (late), and of the earlier ones (missed) what ``policy`` says (see
    the module docstring)."""
    if now <= cursor:
        return []
    late = spec.latest(max(cursor, late_from - 1), now, now - late_from + 1)
    missed_upto = min(now, late_from - 1)
    if missed_upto <= cursor or policy == "none":
        return late
    if policy == "latest":
        return late or spec.latest(cursor, missed_upto, 1)
    return spec.latest(cursor, missed_upto, limit) + late


def late_from(now: int, started: int, grace: int = LATE_GRACE) -> int:
    """The earliest fire time that counts as late rather than missed at ``now``, for a
    scheduler that started (loaded its cursors) at ``started``: due at most ``grace``
    seconds ago, and after the start (what fell due before it was downtime)."""
    return max(now - grace, started + 1)


def missed_any(spec: Spec, cursor: int, late_from: int) -> bool:
    """Whether a fire after ``cursor`` falls before ``late_from`` (is missed)."""
    first = spec.next_after(cursor)
    return first is not None and first < late_from
