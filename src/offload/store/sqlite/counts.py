"""Jobs counted by queue and state: all but the queued ones kept in ``offload_counts``
(migration 0007) by the statements that move jobs, the queued ones read from the claim
index.

Counting a million-job table by queue and state reads every row (no index holds both, and
one that did would cost every claim and outcome an index write); a trigger keeping the
counts would run a trigger program for each row those statements write. So each write
that moves a job into or out of a kept state notes it on a :class:`Tally` and writes the
sum once, in its own transaction, before it commits: a rolled-back write (a crash, a
killed process) leaves the counts as they were, with the jobs. The completion trigger of
the groups counts the jobs it moves itself (see 0007).

Queued jobs are not kept: the claim index holds every queued job by queue, and
job_counts reads the scheduled ones from it anyway. So an enqueue writes no count (a
count written by every enqueue made a one-job enqueue take 1.16 times as long), and a
worker's turn writes one statement, for what it claimed and what finished.
"""

from __future__ import annotations

import sqlite3

from offload.store.sqlite import queries as Q

#: States counted from an index rather than kept (see above).
UNCOUNTED = frozenset({"queued"})


class Tally:
    """Changes to the counts within one write transaction."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes: dict[tuple[str, str], int] = {}

    def add(self, queue: object, state: object, n: int = 1) -> None:
        """``n`` jobs (negative: fewer) in ``state`` on ``queue`` (nothing for a state in
        :data:`UNCOUNTED`)."""
        if state in UNCOUNTED:
            return
        key = (str(queue), str(state))
        self.changes[key] = self.changes.get(key, 0) + n

    def move(self, queue: object, old: object, new: object | None) -> None:
        """A job on ``queue`` went from state ``old`` to ``new`` (None: deleted)."""
        if old == new:
            return
        self.add(queue, old, -1)
        if new is not None:
            self.add(queue, new, 1)

    def flush(self, c: sqlite3.Connection) -> None:
        """Write the changes on ``c``, inside the transaction that made them."""
        rows = [(q, s, n) for (q, s), n in self.changes.items() if n]
        self.changes.clear()
        if len(rows) == 1:
            c.execute(Q.COUNT_ADD, rows[0])
        elif rows:
            c.executemany(Q.COUNT_ADD, rows)


def recount(c: sqlite3.Connection) -> None:
    """Rebuild the counts from the jobs, inside the caller's write transaction."""
    c.execute(Q.COUNTS_CLEAR)
    c.execute(Q.COUNTS_REBUILD)
