"""The PostgreSQL store's pruning: finished jobs past their retention deleted with their
events and messages, a batch per transaction.

Each state's jobs are walked in groups of one stored retention (the task's own, or none),
each an exact range of the ``jobs_retention`` index (migration 0003): the distinct
retentions are found by index seeks, then one transaction deletes the oldest due jobs of
each group in turn, up to the batch's limit, skipping rows another transaction holds (a
retry in flight) rather than waiting for them.
"""

from __future__ import annotations

from typing import Any

from offload.retention import Group, PruneResult, RetentionPolicy, prune_count, prune_groups
from offload.store.postgres import queries as Q
from offload.store.postgres.core import PostgresCore
from offload.store.postgres.pool import Conn
from offload.types import JobState


class PruneMixin(PostgresCore):
    """Prune and count finished jobs past their retention (a part of :class:`PostgresStore`)."""

    def job_prune_expired(self, policy: RetentionPolicy, *, limit: int) -> PruneResult:
        if limit < 1:
            raise ValueError(f"expected limit to be a positive int, got {limit!r}")
        groups = self._groups(policy)
        if not groups:
            return PruneResult()

        def prune(c: Conn) -> PruneResult:
            jobs: dict[JobState, int] = {}
            events = messages = deleted = 0
            for state, stored, keep in groups:
                left = limit - deleted
                if left <= 0:
                    break
                params: dict[str, Any] = {"keep": keep, "limit": left}
                if stored is not None:
                    params["stored"] = stored
                row = c.execute(
                    self.q(Q.prune_bucket(state.value, stored is not None)), params
                ).fetchone()
                n, e, m = (int(v) for v in row) if row else (0, 0, 0)
                if n:
                    jobs[state] = jobs.get(state, 0) + n
                deleted, events, messages = deleted + n, events + e, messages + m
            c.execute(self.q(Q.PRUNE_KEYS), (limit,))  # windows over, bursts merged
            return PruneResult(jobs, events, messages, full=deleted >= limit)

        return self._run(prune)

    def job_prune_count(self, policy: RetentionPolicy) -> PruneResult:
        def count(state: JobState, stored: float | None, keep: float) -> tuple[Any, Any, Any]:
            params: dict[str, Any] = {"keep": keep}
            if stored is not None:
                params["stored"] = stored
            ((n, e, m),) = self._read(Q.count_bucket(state.value, stored is not None), params)
            return n, e, m

        return prune_count(self._groups(policy), count)

    def _groups(self, policy: RetentionPolicy) -> list[Group]:
        return prune_groups(policy, self._next_stored)

    def _next_stored(self, state: JobState, previous: float) -> float | None:
        rows = self._read(Q.retention_next(state.value), {"previous": previous})
        return None if not rows or rows[0][0] is None else float(rows[0][0])
