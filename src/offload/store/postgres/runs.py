"""The PostgreSQL store's runs: claims, leases (renewal and rescue) and what a run writes
(saved values, progress, log lines and its outcome), every write fenced on
``(job_id, attempt)``.

* A claim is one statement: ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED LIMIT
  n) RETURNING ...``, so concurrent workers never wait on each other's rows.
* Outcomes are written ONE way: the statement of ``queries.OUTCOME_CTES`` (every outcome
  of the batch at once, in order). With nothing else to write it runs alone, in
  autocommit (one round trip, one commit), with the claim of a worker's usual turn in the
  same statement (``queries.WRITE_OUTCOMES_AND_CLAIM``). Otherwise (progress, log lines,
  saved values, or an outcome that puts its job back to run now) the other writes, that
  statement, the NOTIFY and the claim go in one pipelined transaction, still one round
  trip; the claim is then a statement of its own, so it can take the requeued job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from offload.store import rules
from offload.store.postgres import queries as Q
from offload.store.postgres.core import PostgresCore
from offload.store.postgres.pool import Conn
from offload.types import (
    ClaimedJob,
    ClaimRequest,
    JobState,
    MessageAdd,
    Outcome,
    ProgressUpdate,
    RenewResult,
    Rescued,
    SaveValue,
)

Cursor = psycopg.Cursor[tuple[Any, ...]]


class RunsMixin(PostgresCore):
    """Claim jobs, hold their leases and record how their runs went (a part of
    :class:`PostgresStore`)."""

    # -- claims ------------------------------------------------------------------------
    def job_claim(
        self,
        *,
        worker_id: str,
        queues: Sequence[str],
        tasks: Sequence[str],
        limit: int,
        lease: float,
        job_ids: Sequence[str] | None = None,
    ) -> list[ClaimedJob]:
        if limit <= 0 or not queues or not tasks:
            return []
        if job_ids is None:
            pick, ids = Q.PICK_BY_QUEUE, []
        else:
            pick, ids = Q.PICK_IDS, list(job_ids)[:limit]
            if not ids:
                return []
        query = self.q(Q.claim(pick))
        params = Q.claim_params(worker_id, queues, tasks, limit, lease, ids)
        claimed, held = _claim_rows(self._run(lambda c: c.execute(query, params).fetchall()), 1)
        if held:
            claimed = self._claim_limited(params, claimed, held, repick=job_ids is None)
        return [ClaimedJob(*r[:12]) for r in claimed]

    def _claim_limited(
        self,
        params: dict[str, Any],
        claimed: list[Any],
        held: list[str],
        *,
        repick: bool,
    ) -> list[Any]:
        """Claim the limited jobs ``held`` that a claim picked but left queued, in a
        transaction of its own: under an advisory lock per key (taken in key order, held
        to commit), count what runs under each key, then claim those a place is left for
        (``rules.admit_limited``). With ``repick``, when a key was full, pick again past
        the full keys, so that jobs behind them still run. Returns ``claimed`` and the
        rows claimed here, in claim order."""
        limit = int(params["limit"])

        def claim_under_limits(c: Conn) -> list[Any]:
            rows: list[Any] = []
            full: set[str] = set()
            waiting = held
            for _ in range(_LIMIT_ROUNDS):
                picked = c.execute(self.q(Q.PICK_LIMITED), (waiting,)).fetchall()
                keys = sorted({key for _, key, _ in picked})
                for key in keys:
                    c.execute(self.q(Q.LOCK_LIMIT), (key,))
                running: dict[str, int] = {}
                if keys:
                    found = c.execute(self.q(Q.RUNNING_UNDER), (keys,)).fetchall()
                    running = {key: int(n) for key, n in found}
                admitted, refused = rules.admit_limited(picked, running)
                admitted = admitted[: limit - len(claimed) - len(rows)]
                full.update(refused)
                if admitted:
                    query = self.q(Q.claim(Q.PICK_ADMITTED, limited=True))
                    got = c.execute(query, {**params, "ids": admitted}).fetchall()
                    rows.extend(_claim_rows(got, 1)[0])
                left = limit - len(claimed) - len(rows)
                if not (repick and refused) or left <= 0:
                    break
                again = {**params, "limit": left, "full": sorted(full)}
                got = c.execute(self.q(Q.claim(Q.PICK_BY_QUEUE)), again).fetchall()
                more, waiting = _claim_rows(got, 1)
                rows.extend(more)
                if not waiting:
                    break
            return rows

        rows = claimed + self._run(claim_under_limits)
        rows.sort(key=lambda r: (-r[11], r[12], r[0]))
        return rows

    # -- leases ------------------------------------------------------------------------
    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        if not runs:
            return RenewResult()
        query = self.q(Q.RENEW)
        params = (float(lease), [r[0] for r in runs], [r[1] for r in runs], worker_id)
        rows = self._run(lambda c: c.execute(query, params).fetchall())
        held = {(r[0], r[1]): bool(r[2]) for r in rows}
        lost = [job_id for job_id, attempt in runs if (job_id, attempt) not in held]
        cancel = [job_id for job_id, attempt in runs if held.get((job_id, attempt))]
        return RenewResult(lost, cancel)

    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        def rescue(c: Conn) -> list[Rescued]:
            rows = c.execute(self.q(Q.EXPIRED)).fetchall()
            out = []
            for job_id, attempt, crashes, worker, cancel in rows:
                state = rules.rescue_state(crashes, crash_limit, bool(cancel))
                reason = rules.rescue_reason(worker)
                c.execute(
                    self.q(Q.RESCUE),
                    {
                        "state": state.value,
                        "error": rules.rescue_error(reason),
                        "id": job_id,
                        "attempt": attempt,
                    },
                )
                message = rules.rescue_message(state, reason)
                self._event(c, job_id, attempt, rules.rescue_kind(state), worker, message)
                out.append(Rescued(job_id, attempt, state))
            if any(r.state is JobState.QUEUED for r in out):
                self._notify(c, "")
            return out

        return self._run(rescue)

    # -- what a run writes ---------------------------------------------------------------
    def job_write(
        self,
        *,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> list[bool]:
        if not (outcomes or progress or messages or saves):
            return []
        if _alone(outcomes, progress, messages, saves):
            return self._write_alone(outcomes, None)[0]

        def record(c: Conn) -> Callable[[], list[bool]]:
            accepted = self._record(c, outcomes, progress, messages, saves)
            return lambda: _accepted(accepted, len(outcomes))

        return self._run_pipelined(record)

    def job_write_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        go = claim.limit > 0 and bool(claim.queues) and bool(claim.tasks)
        params = Q.claim_params(
            claim.worker_id, claim.queues, claim.tasks, claim.limit, claim.lease
        )
        if (go or outcomes) and _alone(outcomes, progress, messages, saves):
            return self._write_alone(outcomes, params if go else None)
        query = self.q(Q.claim(Q.PICK_BY_QUEUE))

        def both(c: Conn) -> Callable[[], tuple[list[bool], list[Any], list[str]]]:
            accepted = self._record(c, outcomes, progress, messages, saves)
            claim = c.execute(query, params) if go else None

            def results() -> tuple[list[bool], list[Any], list[str]]:
                if claim is None:
                    return _accepted(accepted, len(outcomes)), [], []
                return (_accepted(accepted, len(outcomes)), *_claim_rows(claim.fetchall(), 1))

            return results

        written, claimed, held = self._run_pipelined(both)
        if held:
            claimed = self._claim_limited(params, claimed, held, repick=True)
        return written, [ClaimedJob(*r[:12]) for r in claimed]

    def _write_alone(
        self, outcomes: Sequence[Outcome], claim_params: dict[str, Any] | None
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """Outcomes, and the claim when ``claim_params`` are given (a worker's usual
        turn), as ONE autocommit statement: one round trip, one commit."""
        params: dict[str, Any] = Q.outcome_params(outcomes)
        if claim_params is None:
            query = self.q(Q.WRITE_OUTCOMES)
            rows = self._run(lambda c: c.execute(query, params).fetchall(), single=True)
            return Q.accepted([r[0] for r in rows], len(outcomes)), []
        query = self.q(Q.WRITE_OUTCOMES_AND_CLAIM)
        params.update(claim_params)
        rows = self._run(lambda c: c.execute(query, params).fetchall(), single=True)
        accepted = Q.accepted(rows[0][0] if rows else None, len(outcomes))
        claimed, held = _claim_rows(rows, 2)
        if held:
            claimed = self._claim_limited(claim_params, claimed, held, repick=True)
        return accepted, [ClaimedJob(*r[:12]) for r in claimed]

    def _record(
        self,
        c: Conn,
        outcomes: Sequence[Outcome],
        progress: Sequence[ProgressUpdate],
        messages: Sequence[MessageAdd],
        saves: Sequence[SaveValue],
    ) -> Cursor | None:
        """The statements of :meth:`job_write`, sent in the caller's pipelined
        transaction; the cursor of the outcome statement (None without outcomes)."""
        for s in saves:  # rare: a read-modify-write keeps the client's JSON text
            row = c.execute(self.q(Q.RUNNING_SAVED), (s.job_id, s.attempt)).fetchone()
            text = rules.merged_saved(row[0], s.key, s.value) if row is not None else None
            if text is not None:
                c.execute(self.q(Q.SET_SAVED), (text, s.job_id))
        # Progress and messages first, since an outcome ends the run they are
        # fenced on.
        if progress:
            c.execute(
                self.q(Q.SET_PROGRESS),
                (
                    [p.job_id for p in progress],
                    [p.attempt for p in progress],
                    [float(p.current) for p in progress],
                    [Q.float_or_none(p.total) for p in progress],
                    [p.message for p in progress],
                ),
            )
        if messages:
            c.execute(
                self.q(Q.ADD_MESSAGES),
                (
                    [m.job_id for m in messages],
                    [m.attempt for m in messages],
                    [m.text for m in messages],
                ),
            )
        if not outcomes:
            return None
        accepted = c.execute(self.q(Q.WRITE_OUTCOMES), Q.outcome_params(outcomes))
        if any(map(rules.wakes_workers, outcomes)):
            self._notify(c, "")  # a requeue to run now (a spurious wake-up is cheap)
        return accepted


#: Picks a claim under limits makes at most when keys it meets are full.
_LIMIT_ROUNDS = 4


def _claim_rows(rows: Sequence[Any], offset: int) -> tuple[list[Any], list[str]]:
    """The claimed rows of a claim statement (claim columns then ``run_at``, from column
    ``offset``), in claim order, and the ids of limited jobs it left queued (column
    ``offset - 1``)."""
    held = list(rows[0][offset - 1] or ()) if rows else []
    claimed = [r[offset:] for r in rows if r[offset] is not None]
    claimed.sort(key=lambda r: (-r[11], r[12], r[0]))
    return claimed, held


def _alone(
    outcomes: Sequence[Outcome],
    progress: Sequence[ProgressUpdate],
    messages: Sequence[MessageAdd],
    saves: Sequence[SaveValue],
) -> bool:
    """True when the outcome statement can go alone, in autocommit: nothing else to write,
    and no outcome puts its job back to run now (that needs a NOTIFY, and a claim in the
    same call must see the job queued again, which one statement's snapshot cannot)."""
    return not (progress or messages or saves or any(map(rules.wakes_workers, outcomes)))


def _accepted(cursor: Cursor | None, count: int) -> list[bool]:
    """Whether each of ``count`` outcomes was accepted, from the cursor of
    ``queries.WRITE_OUTCOMES`` (the numbers of the accepted ones)."""
    if cursor is None:
        return []
    return Q.accepted([row[0] for row in cursor.fetchall()], count)
