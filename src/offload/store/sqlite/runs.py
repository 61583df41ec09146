"""The SQLite store's runs: claims, leases (renewal and rescue) and what a run writes
(progress, log lines, saved values and its outcome), every write fenced on
``(job_id, attempt)``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from offload.store import rules
from offload.store.base import Store
from offload.store.sqlite import clock
from offload.store.sqlite import queries as Q
from offload.store.sqlite.connection import Database
from offload.store.sqlite.counts import Tally
from offload.store.sqlite.jobs import add_event, count_member, groups_of, queue_of_each
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


class RunsMixin(Store):
    """Claim jobs, hold their leases and record how their runs went (a part of
    :class:`SQLiteStore`)."""

    db: Database
    #: The queue of each job this store claimed and has not yet written an outcome for,
    #: so that counting an outcome (see counts.py) needs no lookup of the job's queue,
    #: which never changes. A job missing here (claimed by another process, or this map
    #: cleared when it grew past ``_REMEMBERED``) is looked up instead.
    _claimed_queues: dict[str, str]

    def _remember(self, jobs: list[ClaimedJob]) -> list[ClaimedJob]:
        queues = self._claimed_queues
        if len(queues) > _REMEMBERED:
            queues.clear()
        for job in jobs:
            queues[job.id] = job.queue
        return jobs

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
        if job_ids is not None:
            ids = list(job_ids)[:limit]
            if not ids:
                return []
            return self._remember(
                self.db.write(
                    lambda c: _counted(c, _claim_ids(c, worker_id, queues, tasks, lease, ids))
                )
            )
        return self._remember(
            self.db.write(
                lambda c: _counted(c, _claim_due(c, worker_id, queues, tasks, limit, lease))
            )
        )

    # -- leases ------------------------------------------------------------------------
    def lease_renew(
        self, *, worker_id: str, runs: Sequence[tuple[str, int]], lease: float
    ) -> RenewResult:
        if not runs:
            return RenewResult()

        def renew(c: sqlite3.Connection) -> RenewResult:
            now, boot, mono = clock.wall(), clock.boot_id(), clock.mono()
            lost, cancel = [], []
            for job_id, attempt in runs:
                row = c.execute(
                    Q.RENEW, (now + lease, boot, mono + lease, job_id, attempt, worker_id)
                ).fetchone()
                if row is None:
                    lost.append(job_id)
                elif row[0]:
                    cancel.append(job_id)
            return RenewResult(lost, cancel)

        return self.db.write(renew)

    def lease_rescue_expired(self, *, crash_limit: int) -> list[Rescued]:
        def rescue(c: sqlite3.Connection) -> list[Rescued]:
            now = clock.wall()
            expired = {"boot": clock.boot_id(), "mono": clock.mono(), "now": now}
            rows = c.execute(Q.EXPIRED, expired).fetchall()
            members = groups_of(c, [r[0] for r in rows])
            out = []
            tally = Tally()
            for job_id, attempt, crashes, worker, cancel, queue in rows:
                state = rules.rescue_state(crashes, crash_limit, bool(cancel))
                reason = rules.rescue_reason(worker)
                error = rules.rescue_error(reason)
                rescued = c.execute(
                    Q.RESCUE,
                    {"state": state.value, "error": error, "now": now, "id": job_id,
                     "attempt": attempt},
                ).rowcount  # fmt: skip
                if rescued:
                    count_member(c, members.get(job_id), JobState.RUNNING.value, state.value)
                    tally.move(queue, JobState.RUNNING.value, state.value)
                message = rules.rescue_message(state, reason)
                add_event(c, job_id, now, attempt, rules.rescue_kind(state), worker, message)
                out.append(Rescued(job_id, attempt, state))
            tally.flush(c)
            return out

        return self.db.write(rescue)

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

        def record(c: sqlite3.Connection) -> list[bool]:
            tally = Tally()
            known = self._claimed_queues
            accepted = _record(c, outcomes, progress, messages, saves, tally, known)
            tally.flush(c)
            return accepted

        return self.db.write(record)

    def job_write_and_claim(
        self,
        *,
        claim: ClaimRequest,
        outcomes: Sequence[Outcome] = (),
        progress: Sequence[ProgressUpdate] = (),
        messages: Sequence[MessageAdd] = (),
        saves: Sequence[SaveValue] = (),
    ) -> tuple[list[bool], list[ClaimedJob]]:
        def both(c: sqlite3.Connection) -> tuple[list[bool], list[ClaimedJob]]:
            tally = Tally()
            known = self._claimed_queues
            accepted = _record(c, outcomes, progress, messages, saves, tally, known)
            jobs = _claim_due(
                c, claim.worker_id, claim.queues, claim.tasks, claim.limit, claim.lease
            )
            _note_claimed(tally, jobs)
            tally.flush(c)
            return accepted, jobs

        accepted, jobs = self.db.write(both)
        return accepted, self._remember(jobs)


def _claim_due(
    c: sqlite3.Connection,
    worker_id: str,
    queues: Sequence[str],
    tasks: Sequence[str],
    limit: int,
    lease: float,
) -> list[ClaimedJob]:
    """Claim due jobs inside the caller's write transaction."""
    if limit <= 0 or not queues or not tasks:
        return []
    if c.execute(Q.ANY_LIMITED).fetchone() is not None:
        return _claim_limited(c, worker_id, queues, tasks, limit, lease, None)
    now = clock.wall()
    bound = _due_bound(queues, tasks, now, (), limit)
    rows = c.execute(
        Q.claim_due(len(queues), len(tasks)), [*_claim_set(worker_id, now, lease), *bound]
    ).fetchall()
    c.executemany(Q.INSERT_STARTED, [(r[0], now, r[5], worker_id) for r in rows])
    # RETURNING comes in no particular order: hand jobs out in claim order.
    rows.sort(key=lambda r: (-r[11], r[12], r[0]))
    return [ClaimedJob(*r[:12]) for r in rows]


def _claim_ids(
    c: sqlite3.Connection,
    worker_id: str,
    queues: Sequence[str],
    tasks: Sequence[str],
    lease: float,
    ids: list[str],
) -> list[ClaimedJob]:
    """Claim those of ``ids`` that are due, inside the caller's write transaction."""
    if c.execute(Q.ANY_LIMITED).fetchone() is not None:
        return _claim_limited(c, worker_id, queues, tasks, len(ids), lease, ids)
    now = clock.wall()
    rows = c.execute(
        Q.claim_ids(len(ids), len(queues), len(tasks)),
        [*_claim_set(worker_id, now, lease), *ids, now, *queues, *tasks],
    ).fetchall()
    c.executemany(Q.INSERT_STARTED, [(r[0], now, r[5], worker_id) for r in rows])
    return [ClaimedJob(*r) for r in rows]


def _due_bound(
    queues: Sequence[str], tasks: Sequence[str], now: float, full: Sequence[str], limit: int
) -> list[Any]:
    """The values bound by ``Q.claim_due`` and ``Q.pick_due`` (``full``: keys left out,
    for the latter only): per queue the queue, now, the tasks, the keys and the limit;
    then the limit once more when there are several queues."""
    bound: list[Any] = []
    for queue in queues:
        bound.extend([queue, now, *tasks, *full, limit])
    if len(queues) > 1:
        bound.append(limit)
    return bound


#: Claimed jobs' queues a store remembers at most (see ``RunsMixin._claimed_queues``).
_REMEMBERED = 100_000

#: Picks a claim makes at most when limited jobs fill its batch with keys already full.
_LIMIT_ROUNDS = 4


def _claim_limited(
    c: sqlite3.Connection,
    worker_id: str,
    queues: Sequence[str],
    tasks: Sequence[str],
    limit: int,
    lease: float,
    ids: list[str] | None,
) -> list[ClaimedJob]:
    """A claim while limited jobs wait: pick due jobs in claim order, admit a limited one
    only while fewer than its ``limit_max`` jobs run under its key (counting those admitted
    here), claim what was admitted, and pick again past the keys found full, so jobs
    behind a full key still run. One writer at a time (``BEGIN IMMEDIATE``) makes the
    count and the claim one step."""
    now = clock.wall()
    full: set[str] = set()
    rows: list[Any] = []
    for _ in range(_LIMIT_ROUNDS):
        want = limit - len(rows)
        if want <= 0:
            break
        if ids is None:
            bound = _due_bound(queues, tasks, now, sorted(full), want)
            picked = c.execute(Q.pick_due(len(queues), len(tasks), len(full)), bound).fetchall()
        else:
            picked = c.execute(
                Q.pick_ids(len(ids), len(queues), len(tasks)), [*ids, now, *queues, *tasks]
            ).fetchall()
        keys = sorted({key for _, key, _ in picked if key is not None})
        running: dict[str, int] = {}
        if keys:
            running = {k: int(n) for k, n in c.execute(Q.running_under(len(keys)), keys)}
        admitted, refused = rules.admit_limited(picked, running)
        full.update(refused)
        if admitted:
            rows.extend(
                c.execute(
                    Q.claim_listed(len(admitted)),
                    [*_claim_set(worker_id, now, lease), *admitted],
                ).fetchall()
            )
        if not refused or ids is not None or not picked:
            break
    c.executemany(Q.INSERT_STARTED, [(r[0], now, r[5], worker_id) for r in rows])
    rows.sort(key=lambda r: (-r[11], r[12], r[0]))
    return [ClaimedJob(*r[:12]) for r in rows]


def _note_claimed(tally: Tally, jobs: list[ClaimedJob]) -> None:
    """Count ``jobs``, just claimed, as running (queued ones are not kept)."""
    for job in jobs:
        tally.add(job.queue, JobState.RUNNING.value)


def _counted(c: sqlite3.Connection, jobs: list[ClaimedJob]) -> list[ClaimedJob]:
    """``jobs``, just claimed on ``c``, counted (see ``_note_claimed``)."""
    tally = Tally()
    _note_claimed(tally, jobs)
    tally.flush(c)
    return jobs


def _claim_set(worker_id: str, now: float, lease: float) -> list[Any]:
    """The values a claim sets (see ``queries._CLAIM_SET``): the lease ends ``lease``
    seconds from now on the wall clock and on this boot's monotonic clock."""
    return [worker_id, now + lease, now, clock.boot_id(), clock.mono() + lease]


def _record(
    c: sqlite3.Connection,
    outcomes: Sequence[Outcome],
    progress: Sequence[ProgressUpdate],
    messages: Sequence[MessageAdd],
    saves: Sequence[SaveValue],
    tally: Tally,
    known: dict[str, str],
) -> list[bool]:
    """The writes of :meth:`Store.job_write`, inside the caller's write transaction
    (the outcomes' moves noted on ``tally``; ``known``: the queues of jobs claimed by
    this store, taken out as their outcomes are written)."""
    now = clock.wall()
    if progress:
        c.executemany(
            Q.SET_PROGRESS,
            [(p.current, p.total, p.message, p.job_id, p.attempt) for p in progress],
        )
    if messages:
        c.executemany(
            Q.ADD_MESSAGE,
            [(m.job_id, now, m.attempt, m.text, m.job_id, m.attempt) for m in messages],
        )
    for s in saves:
        row = c.execute(Q.RUNNING_SAVED, (s.job_id, s.attempt)).fetchone()
        text = rules.merged_saved(row[0], s.key, s.value) if row is not None else None
        if text is not None:
            c.execute(Q.SET_SAVED, (text, s.job_id))
    if not outcomes:
        return []
    queues = {o.job_id: known.pop(o.job_id) for o in outcomes if o.job_id in known}
    missing = [o.job_id for o in outcomes if o.job_id not in queues]
    if missing:
        queues.update(queue_of_each(c, missing))
    members = groups_of(c, [o.job_id for o in outcomes])
    return [
        _finish(c, o, now, queues.get(o.job_id), members.get(o.job_id), tally) for o in outcomes
    ]


def _finish(
    c: sqlite3.Connection,
    o: Outcome,
    now: float,
    queue: str | None,
    group_id: str | None,
    tally: Tally,
) -> bool:
    """One outcome: the fenced transition and its event (``refused`` if stale), counted
    on the job's queue (None: the job is not stored) and in its group (``group_id``: the
    open group it is a member of, if any)."""
    errors, crashes = rules.outcome_errors(o), rules.outcome_crashes(o)
    if o.state is JobState.QUEUED:
        row = c.execute(
            Q.REQUEUE,
            {"delay": o.delay, "now": now, "errors": errors, "crashes": crashes,
             "error": o.error, "id": o.job_id, "attempt": o.attempt},
        ).fetchone()  # fmt: skip
        if row is None:
            return _refused(c, o, now)
        count_member(c, group_id, "running", row[0])
        tally.move(queue, JobState.RUNNING.value, row[0])
        if row[0] == JobState.CANCELLED.value:  # its cancel was requested: not requeued
            kind, message = rules.CANCELLED, rules.outcome_not_retried(o)
        else:
            kind, message = rules.outcome_kind(o), o.reason
        add_event(c, o.job_id, now, o.attempt, kind, o.worker_id, message)
        return True
    cur = c.execute(
        Q.FINISH,
        (o.state.value, o.result, o.error, now, errors, crashes, o.job_id, o.attempt),
    )
    if cur.rowcount == 1:
        count_member(c, group_id, "running", o.state.value)
        tally.move(queue, JobState.RUNNING.value, o.state.value)
        add_event(c, o.job_id, now, o.attempt, rules.outcome_kind(o), o.worker_id, o.reason)
        return True
    return _refused(c, o, now)


def _refused(c: sqlite3.Connection, o: Outcome, now: float) -> bool:
    """A stale outcome: a ``refused`` event for a job that exists; False."""
    if c.execute(Q.JOB_EXISTS, (o.job_id,)).fetchone() is not None:
        add_event(c, o.job_id, now, o.attempt, rules.REFUSED, o.worker_id, rules.refusal(o))
    return False
