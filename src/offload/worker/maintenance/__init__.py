"""Maintenance: what a supervisor does every ``heartbeat`` seconds, one duty per module.

In order: renew the leases of the jobs it holds (:mod:`.leases`), write its process-table
rows (:mod:`.rows`), renew a drain's lock (:mod:`.lock`), rescue jobs whose lease expired
in any worker (:mod:`.rescue`), publish its task names and name the tasks with waiting
jobs that no live worker registers (:mod:`.unknown_tasks`), and prune finished jobs past
their retention, on its own interval (:mod:`.prune`). The first failure ends the
round: with the store down, each further call would block for its own timeout while
children wait to be served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from offload.worker.component import Component


class Duty(Protocol):
    """One maintenance duty. Only :meth:`run` is required; subclass for the defaults."""

    def run(self) -> bool:
        """Do it, once a heartbeat; False if the store failed (the round ends here)."""
        ...

    def between(self) -> None:
        """Each turn between heartbeats: catch up on what cannot wait a heartbeat."""
        return None

    def next_at(self) -> float | None:
        """When :meth:`between` next has something to do (None: nothing due); it must
        move on once acted on (the rule for next_at in component.py)."""
        return None

    def close(self) -> None:
        """The worker is exiting: leave the store as it should find it."""
        return None


class Maintenance(Component):
    """Runs ``duties`` in order every ``interval`` seconds (the first at the first turn)."""

    def __init__(self, interval: float, duties: Sequence[Duty]) -> None:
        self._interval = interval
        self._duties = tuple(duties)
        self._next = 0.0

    def next_at(self) -> float | None:
        moments = [at for duty in self._duties if (at := duty.next_at()) is not None]
        return min(self._next, *moments) if moments else self._next

    def tick(self, now: float, ready: Sequence[Any]) -> None:
        if now < self._next:
            for duty in self._duties:
                duty.between()
            return
        self._next = now + self._interval
        for duty in self._duties:
            if not duty.run():
                return

    def close(self) -> None:
        for duty in self._duties:
            duty.close()
