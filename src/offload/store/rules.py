"""What both stores must agree on, written once: column lists, derived states, list
filters, the counters, event kinds and texts of outcomes and rescues, process statuses.

Each backend builds its SQL and its rows from these, so a rule changed here changes on
SQLite and PostgreSQL together. SQL fragments are plain text: a backend passes in how it
writes the store's "now" (a bound parameter on SQLite, the server's clock on PostgreSQL)
and how it spells a named parameter.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

from offload.types import (
    TERMINAL_STATES,
    ErrorInfo,
    JobFilter,
    JobRow,
    JobState,
    Outcome,
    ProcessInfo,
    Progress,
)

# -- columns ---------------------------------------------------------------------------------

#: Columns that build a ClaimedJob, in field order (both backends select these).
CLAIM_COLUMNS = (
    "id, task, queue, args, kwargs, attempt, max_attempts, errors, crashes, timeout, options,"
    " priority"
)

#: Stored columns of a JobRow, in field order (:func:`job_row` builds the row from them).
JOB_COLUMNS = (
    "id, task, queue, state, priority, args, kwargs, attempt, max_attempts, errors, crashes,"
    " created_at, run_at, started_at, finished_at, leased_until, worker_id, timeout, options,"
    " unique_key, progress_current, progress_total, progress_message, result, error, saved,"
    " cancel_requested"
)

#: Stored columns of a ProcessInfo, in field order (``status`` is computed on read).
PROCESS_COLUMNS = (
    "id, kind, host, pid, parent_id, queues, started_at, heartbeat_at, stopped_at, served,"
    " failed, current_job, rss, peak_rss, info"
)

#: The states of an unfinished job, as an SQL list: a unique key is held by these only
#: (the same list as the unique index of both migrations).
ACTIVE_STATES_SQL = "('queued', 'running')"
#: The terminal states, as an SQL list.
FINISHED_STATES_SQL = "(" + ", ".join(f"'{s}'" for s in TERMINAL_STATES) + ")"


# -- the derived ``scheduled`` state -----------------------------------------------------------


def derived_state(stored: JobState, run_at: float, now: float) -> JobState:
    """The state a reader sees. ``scheduled`` is never stored: it is a ``queued`` job whose
    ``run_at`` is still ahead of the store's ``now``."""
    if stored is JobState.QUEUED and run_at > now:
        return JobState.SCHEDULED
    return stored


def scheduled_sql(now: str) -> str:
    """:func:`derived_state`'s ``scheduled`` test as an SQL condition; ``now`` is the SQL
    text of the store's now."""
    return f"state = 'queued' AND run_at > {now}"


def due_sql(now: str) -> str:
    """The opposite among queued jobs: a ``queued`` job as a reader sees it."""
    return f"state = 'queued' AND run_at <= {now}"


def state_sql(now: str) -> str:
    """The state a reader sees, as an SQL expression (for counts by state)."""
    return f"CASE WHEN {scheduled_sql(now)} THEN 'scheduled' ELSE state END"


def job_row(r: Sequence[Any], now: float) -> JobRow:
    """A JobRow from a row of :data:`JOB_COLUMNS`, its state derived at ``now``."""
    return JobRow(
        id=r[0], task=r[1], queue=r[2], state=derived_state(JobState(r[3]), r[12], now),
        priority=r[4], args=r[5], kwargs=r[6], attempt=r[7], max_attempts=r[8], errors=r[9],
        crashes=r[10], created_at=r[11], run_at=r[12], started_at=r[13], finished_at=r[14],
        leased_until=r[15], worker_id=r[16], timeout=r[17], options=r[18], unique_key=r[19],
        progress=Progress(r[20], r[21], r[22]), result=r[23], error=r[24], saved=r[25],
        cancel_requested=bool(r[26]),
    )  # fmt: skip


# -- list filters ------------------------------------------------------------------------------


def job_filter_sql(
    filter: JobFilter, *, now: str, param: Callable[[str], str]
) -> tuple[str, dict[str, Any]]:
    """The ``WHERE`` clause (empty when nothing is filtered) and its named parameters for
    :meth:`Store.job_list`. ``param(name)`` spells a named parameter in the backend's
    SQL; ``now`` is the SQL text of the store's now."""
    where: list[str] = []
    values: dict[str, Any] = {}
    if filter.state is JobState.SCHEDULED:
        where.append(scheduled_sql(now))
    elif filter.state is JobState.QUEUED:
        where.append(due_sql(now))
    elif filter.state is not None:
        where.append(f"state = {param('state')}")
        values["state"] = JobState(filter.state).value
    for column, value in (("queue", filter.queue), ("task", filter.task)):
        if value:
            where.append(f"{column} = {param(column)}")
            values[column] = value
    if filter.before_id:
        where.append(f"id < {param('before_id')}")
        values["before_id"] = filter.before_id
    return ("WHERE " + " AND ".join(where)) if where else "", values


# -- outcomes ----------------------------------------------------------------------------------

#: The event kind of an outcome that was not accepted (the run it names is over).
REFUSED = "refused"


def outcome_errors(o: Outcome) -> int:
    """What an outcome adds to the job's error count: 1 for a counted failure or retry."""
    return 1 if o.count_error and o.state is not JobState.SUCCEEDED else 0


def outcome_crashes(o: Outcome) -> int:
    """What an outcome adds to the job's crash count (crashes lead to quarantine)."""
    return 1 if o.crashed else 0


def outcome_kind(o: Outcome) -> str:
    """The event kind written for an accepted outcome."""
    if o.state is JobState.QUEUED:
        return "retry" if o.count_error or o.crashed else "requeued"
    return o.state.value


def refusal(o: Outcome) -> str:
    """The event message of a refused (stale) outcome."""
    return f"stale {o.state.value} outcome of attempt {o.attempt} refused"


def first_of_each_run(outcomes: Sequence[Outcome]) -> list[bool]:
    """For each outcome of a batch, whether it is the first naming its run
    ``(job_id, attempt)``. Only a first one can be accepted: outcomes are applied in
    order, and the first one ends the run a later one is fenced on (so a backend that
    writes the batch at once applies only these)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for o in outcomes:
        run = (o.job_id, o.attempt)
        out.append(run not in seen)
        seen.add(run)
    return out


def wakes_workers(o: Outcome) -> bool:
    """True when the outcome puts its job back to run now (idle workers should look)."""
    return o.state is JobState.QUEUED and o.delay <= 0


# -- lease rescue ------------------------------------------------------------------------------


def rescue_state(crashes: int, crash_limit: int) -> JobState:
    """Where a job whose lease expired goes: the expiry counts as one more crash."""
    return JobState.QUARANTINED if crashes + 1 >= crash_limit else JobState.QUEUED


def rescue_kind(state: JobState) -> str:
    """The event kind of a rescue that sent the job to ``state``."""
    return "quarantined" if state is JobState.QUARANTINED else "lease_expired"


def rescue_reason(worker: str | None) -> str:
    """The event message of a rescue, and the message of its stored error."""
    return f"lease expired (worker {worker} stopped heartbeating)"


def rescue_error(reason: str) -> str:
    """The error stored on a rescued job."""
    return ErrorInfo("LeaseExpired", reason).to_json()


# -- processes ---------------------------------------------------------------------------------

#: A process is ``gone`` after this many of its heartbeat intervals without a heartbeat.
GONE_AFTER_BEATS = 3


def process_statuses(
    rows: Sequence[ProcessInfo], now: float, gone_after: float
) -> list[ProcessInfo]:
    """``rows`` with ``status`` filled: ``stopped`` once stopped, ``gone`` after
    :data:`GONE_AFTER_BEATS` of the process's own heartbeat intervals without one, else
    ``running``.

    A process publishes its interval as ``info["heartbeat"]`` (a child is judged by its
    parent's), so a worker configured with a 30 s heartbeat is not gone after 15 s; a row
    with no published interval is gone after ``gone_after`` seconds.
    """
    beats = {p.id: _published_heartbeat(p.info) for p in rows}
    out = []
    for p in rows:
        if p.stopped_at is not None:
            status = "stopped"
        else:
            beat = beats[p.id] or beats.get(p.parent_id or "")
            limit = GONE_AFTER_BEATS * beat if beat else gone_after
            status = "gone" if now - p.heartbeat_at > limit else "running"
        out.append(p if p.status == status else dataclasses.replace(p, status=status))
    return out


def _published_heartbeat(info: str) -> float | None:
    try:
        value = json.loads(info) if info and info != "{}" else None
    except (ValueError, RecursionError):
        return None
    beat = value.get("heartbeat") if isinstance(value, dict) else None
    if isinstance(beat, int | float) and not isinstance(beat, bool) and 0 < beat < 1e9:
        return float(beat)
    return None
