"""The SQLite store's pruning: finished jobs past their retention deleted with their
events and messages, in batches of one short write transaction each.

Each state's jobs are walked in groups of one stored retention (the task's own, or none),
each an exact range of the ``offload_jobs_retention`` index (migration 0003): the
distinct retentions are found by index seeks outside any transaction, and the batch
deletes the oldest due jobs of each group in turn, up to its limit.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from offload.retention import Group, PruneResult, RetentionPolicy, prune_count, prune_groups
from offload.store.base import Store
from offload.store.sqlite import queries as Q
from offload.store.sqlite.connection import Database
from offload.store.sqlite.counts import Tally
from offload.types import JobState

#: Ids per ``IN (...)`` list: under SQLite's oldest limit on bound values (999).
_CHUNK = 500


class PruneMixin(Store):
    """Prune and count finished jobs past their retention (a part of :class:`SQLiteStore`)."""

    db: Database

    def job_prune_expired(self, policy: RetentionPolicy, *, limit: int) -> PruneResult:
        if limit < 1:
            raise ValueError(f"expected limit to be a positive int, got {limit!r}")
        groups = self._groups(policy)
        if not groups:
            return PruneResult()

        def prune(c: sqlite3.Connection) -> PruneResult:
            cutoff_base = self.now()
            jobs: dict[JobState, int] = {}
            ids: list[str] = []
            tally = Tally()
            for state, stored, keep in groups:
                left = limit - len(ids)
                if left <= 0:
                    break
                params = [state.value, *([stored] if stored is not None else [])]
                rows = c.execute(
                    Q.prune_bucket(stored is not None), [*params, cutoff_base - keep, left]
                ).fetchall()
                if rows:
                    jobs[state] = jobs.get(state, 0) + len(rows)
                    ids.extend(r[0] for r in rows)
                    for _, queue, was in rows:
                        tally.add(queue, was, -1)
            tally.flush(c)
            events = messages = 0
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                events += c.execute(Q.delete_events_of(len(chunk)), chunk).rowcount
                messages += c.execute(Q.delete_messages_of(len(chunk)), chunk).rowcount
            c.execute(Q.PRUNE_KEYS, (cutoff_base, limit))  # windows over, bursts merged
            return PruneResult(jobs, events, messages, full=len(ids) >= limit)

        return self.db.write(prune)

    def job_prune_count(self, policy: RetentionPolicy) -> PruneResult:
        now = self.now()

        def count(state: JobState, stored: float | None, keep: float) -> tuple[Any, Any, Any]:
            params = [state.value, *([stored] if stored is not None else []), now - keep]
            ((n, e, m),) = self.db.read(Q.count_bucket(stored is not None), params * 3)
            return n, e, m

        return prune_count(self._groups(policy), count)

    def _groups(self, policy: RetentionPolicy) -> list[Group]:
        return prune_groups(policy, self._next_stored)

    def _next_stored(self, state: JobState, previous: float) -> float | None:
        rows = self.db.read(Q.RETENTION_NEXT, (state.value, previous))
        return None if not rows or rows[0][0] is None else float(rows[0][0])
