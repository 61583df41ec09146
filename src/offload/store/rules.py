"""What both stores must agree on, written once: column lists, derived states, list
filters, the counters, event kinds and texts of outcomes and rescues, a cancel request
that outlives its run, process statuses, the task names processes publish, the fire
records of schedules.

Each backend builds its SQL and its rows from these, so a rule changed here changes on
SQLite and PostgreSQL together. SQL fragments are plain text: a backend passes in how it
writes the store's "now" (a bound parameter on SQLite, the server's clock on PostgreSQL)
and how it spells a named parameter.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from offload.errors import (
    ConfigError,
    SerializationError,
)
from offload.serialization import loads
from offload.types import (
    TERMINAL_STATES,
    ErrorInfo,
    FireRecord,
    JobFilter,
    JobRow,
    JobState,
    NewJob,
    Outcome,
    ProcessInfo,
    Progress,
    ScheduleFire,
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
    " cancel_requested, limit_key, limit_max"
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


# -- new jobs: when they run, what holds a key ---------------------------------------------------


def run_at_of(job: NewJob, now: float) -> float:
    """When a new job is due: its ``run_at``, else ``now`` plus its delay; a debounced job
    no earlier than its debounce from ``now`` (also when it is merged into a waiting one)."""
    run_at = job.run_at if job.run_at is not None else now + job.delay
    if job.debounce is not None:
        run_at = max(run_at, now + job.debounce)
    return run_at


def holds_key(stored: object, unique_states: Sequence[JobState]) -> bool:
    """Whether a job stored within its key's window still holds the key in ``stored``
    state (as read from the store): an unfinished job always does, a finished one when
    its state is among ``unique_states`` (every state when there are none). A state that
    is none of offload's (a row written by hand) holds the key."""
    try:
        state = JobState(str(stored))
    except ValueError:
        return True
    if state in (JobState.QUEUED, JobState.RUNNING):
        return True
    return not unique_states or state in unique_states


# -- per-key concurrency limits ------------------------------------------------------------------


def admit_limited(
    picked: Iterable[Sequence[Any]], running: Mapping[str, int]
) -> tuple[list[str], set[str]]:
    """Which of the ``(id, limit_key, limit_max)`` picked for a claim (in claim order) may
    run, given how many run under each key (``running``): every job without a key, and a
    limited one while fewer than its own ``limit_max`` run under its key, counting those
    admitted before it. Returns the admitted ids and the keys found full."""
    counts = dict(running)
    admitted: list[str] = []
    full: set[str] = set()
    for job_id, key, most in picked:
        if key is None:
            admitted.append(job_id)
            continue
        n = counts.get(key, 0)
        if n < _most(most):
            counts[key] = n + 1
            admitted.append(job_id)
        else:
            full.add(key)
    return admitted, full


def _most(value: object) -> int:
    """A stored ``limit_max`` as a count; anything but a positive int (a row written by
    hand) counts as 1, the strictest limit, rather than stopping every claim."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return 1


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
        cancel_requested=bool(r[26]), limit_key=r[27], limit_max=r[28],
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


# -- finished jobs by minute --------------------------------------------------------------------

#: Longest window :meth:`Store.job_finished_by_minute` reads: a week of minutes.
MAX_MINUTES = 7 * 24 * 60


def check_minutes(minutes: object) -> int:
    """``minutes`` of :meth:`Store.job_finished_by_minute`, checked: an int from 1 to
    :data:`MAX_MINUTES`. Raises ConfigError naming the value otherwise."""
    if type(minutes) is not int or not 1 <= minutes <= MAX_MINUTES:
        raise ConfigError(f"expected minutes to be an int from 1 to {MAX_MINUTES}, got {minutes!r}")
    return minutes


def minutes_since(now: float, minutes: int) -> float:
    """The start of the first of the last ``minutes`` whole minutes (the current one
    included) at ``now``: jobs that finished at or after it are counted."""
    return (now // 60) * 60 - (minutes - 1) * 60


def with_scheduled(rows: Sequence[Any]) -> dict[tuple[str, str], int]:
    """``job_counts`` from the rows of a counts statement (queue, state, n): summed by
    ``(queue, state)``, with the scheduled ones (rows of state ``scheduled``) taken out
    of ``queued``; states with no job left out."""
    counts: dict[tuple[str, str], int] = {}
    for queue, state, n in rows:
        counts[queue, state] = counts.get((queue, state), 0) + int(n)
        if state == "scheduled":
            counts[queue, "queued"] = counts.get((queue, "queued"), 0) - int(n)
    return {key: n for key, n in counts.items() if n > 0}


def finished_by_minute(rows: Iterable[Sequence[Any]]) -> dict[tuple[float, str], int]:
    """``(minute start, state, count)`` rows as a dict; what is not a finished state or a
    count (a row written by hand) is left out."""
    out: dict[tuple[float, str], int] = {}
    for minute, state, n in rows:
        if state not in TERMINAL_STATES or not isinstance(minute, int | float):
            continue
        key = (float(minute), str(state))
        out[key] = out.get(key, 0) + int(n)
    return out


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


# -- who cancelled ------------------------------------------------------------------------------


def cancel_message(by: str | None, *, waiting: bool) -> str:
    """The event message of a cancel: a waiting job is ``cancelled`` at once, a running
    one gets ``cancel_requested``; both say who asked when ``by`` is given."""
    who = f" by {by}" if by else ""
    return f"cancelled{who}" if waiting else who.strip()


# -- a cancel request outlives the run ----------------------------------------------------------
#
# A job someone asked to cancel is never queued again: an outcome that would requeue it
# (a retry after an error, a crash, a shutdown, a batch hand-back) and a rescue of its
# expired lease end it ``cancelled`` instead, with the event kind below and the message of
# :func:`not_retried`. (The next claim would otherwise clear the request and run it again.)
# A terminal outcome (succeeded, failed, quarantined) stays what it is.

#: The event kind of a requeue or rescue that ended a job ``cancelled`` instead.
CANCELLED = "cancelled"


def not_retried(after: str) -> str:
    """The event message of a job ended ``cancelled`` instead of being queued again;
    ``after`` says what ended the run."""
    return f"cancel requested; not retried after {after}"


def outcome_not_retried(o: Outcome) -> str:
    """:func:`not_retried` for a requeue outcome: after the run's error (type and
    message), or after the outcome's reason when it carries no error."""
    info = ErrorInfo.from_json(o.error) if o.error else None
    if info is not None and (info.type or info.message):
        return not_retried(f"{info.type}: {info.message}" if info.message else info.type)
    return not_retried(o.reason or "the run ended")


# -- lease rescue ------------------------------------------------------------------------------


def rescue_state(crashes: int, crash_limit: int, cancel_requested: bool = False) -> JobState:
    """Where a job whose lease expired goes: the expiry counts as one more crash. A job
    someone asked to cancel is not queued again: it ends ``cancelled``. A crash count
    that is not an integer (a row written by hand) counts as none, rather than stopping
    every rescue."""
    if type(crashes) is not int:
        crashes = 0
    if crashes + 1 >= crash_limit:
        return JobState.QUARANTINED
    return JobState.CANCELLED if cancel_requested else JobState.QUEUED


def rescue_kind(state: JobState) -> str:
    """The event kind of a rescue that sent the job to ``state``."""
    if state is JobState.QUARANTINED:
        return "quarantined"
    return CANCELLED if state is JobState.CANCELLED else "lease_expired"


def rescue_message(state: JobState, reason: str) -> str:
    """The event message of a rescue that sent the job to ``state`` (``reason``: the
    :func:`rescue_reason`)."""
    return not_retried(reason) if state is JobState.CANCELLED else reason


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
    rows: Sequence[ProcessInfo],
    now: float,
    gone_after: float,
    silent: Mapping[str, float] | None = None,
) -> list[ProcessInfo]:
    """``rows`` with ``status`` filled: ``stopped`` once stopped, ``gone`` after
    :data:`GONE_AFTER_BEATS` of the process's own heartbeat intervals without one, else
    ``running``.

    A process publishes its interval as ``info["heartbeat"]`` (a child is judged by its
    parent's), so a worker configured with a 30 s heartbeat is not gone after 15 s; a row
    with no published interval is gone after ``gone_after`` seconds.

    ``silent`` gives, by row id, the seconds since a row's last heartbeat as measured on a
    clock that wall-clock steps do not move (SQLite: the host's monotonic clock, infinite
    for a row of an earlier boot); other rows are judged by ``now - heartbeat_at``.
    """
    beats = {p.id: _published_heartbeat(p.info) for p in rows}
    silent = silent or {}
    out = []
    for p in rows:
        if p.stopped_at is not None:
            status = "stopped"
        else:
            beat = beats[p.id] or beats.get(p.parent_id or "")
            limit = GONE_AFTER_BEATS * beat if beat else gone_after
            quiet = silent.get(p.id)
            if quiet is None:
                quiet = now - p.heartbeat_at
            status = "gone" if quiet > limit else "running"
        out.append(p if p.status == status else dataclasses.replace(p, status=status))
    return out


#: Most task names a process may publish, and longest name kept (longer ones are cut).
MAX_PUBLISHED_TASKS = 10_000
MAX_TASK_NAME = 1000


def tasks_json(tasks: Sequence[str]) -> str:
    """The stored form of the task names a process registers: a JSON array of strings,
    sorted, without duplicates."""
    names = sorted({str(t)[:MAX_TASK_NAME] for t in tasks})[:MAX_PUBLISHED_TASKS]
    return json.dumps(names, separators=(",", ":"), ensure_ascii=False)


def published_tasks(text: object) -> list[str]:
    """The task names a process row publishes, read back from its ``tasks`` column. What
    is not a JSON array of strings (a row written by hand) publishes nothing."""
    if not isinstance(text, str) or not text.startswith("["):
        return []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if not isinstance(value, list):
        return []
    return [t for t in value if isinstance(t, str)]


def live_tasks(rows: Sequence[ProcessInfo], tasks: Mapping[str, object]) -> set[str]:
    """The task names registered by the processes of ``rows`` (statuses filled) that are
    running; ``tasks`` holds each row's stored ``tasks`` text by id."""
    live: set[str] = set()
    for p in rows:
        if p.status == "running":
            live.update(published_tasks(tasks.get(p.id)))
    return live


def task_label(value: object) -> str:
    """A stored task name as text: itself when it is text, else a description of what is
    stored (a row written by hand may hold bytes or a number there)."""
    if isinstance(value, str):
        return value
    return f"<{type(value).__name__} {value!r:.60}>"


def unserved_tasks(counts: Iterable[Sequence[Any]], live: set[str]) -> dict[str, int]:
    """From ``(task, count)`` rows of waiting jobs, those whose task no live process
    registers, by name (sorted)."""
    out: dict[str, int] = {}
    for task, count in counts:
        if isinstance(task, str) and task in live:
            continue
        name = task_label(task)
        out[name] = out.get(name, 0) + int(count)
    return dict(sorted(out.items()))


def _published_heartbeat(info: str) -> float | None:
    try:
        value = json.loads(info) if info and info != "{}" else None
    except (ValueError, RecursionError):
        return None
    beat = value.get("heartbeat") if isinstance(value, dict) else None
    if isinstance(beat, int | float) and not isinstance(beat, bool) and 0 < beat < 1e9:
        return float(beat)
    return None


def merged_saved(stored: str | None, key: str, value: str) -> str | None:
    """A job's ``saved`` JSON text with ``key`` set to the JSON ``value``; None when
    ``value`` does not decode (the save is dropped, never the whole write). Stored text
    that is not a JSON object (written by hand) is replaced rather than failing every
    later write of the job."""
    try:
        new = loads(value)
    except SerializationError:
        return None
    try:
        saved = loads(stored) if stored else {}
    except SerializationError:
        saved = {}
    if not isinstance(saved, dict):
        saved = {}
    saved[key] = new
    return json.dumps(saved, separators=(",", ":"), ensure_ascii=False)


# -- schedules ---------------------------------------------------------------------------------

#: Columns of a fire record, in :class:`FireRecord` field order.
FIRE_COLUMNS = "schedule, fire_at, job_id, recorded_at"
#: Longest schedule name (the same bound as a task name).
MAX_SCHEDULE_NAME = 200
#: Latest fire time accepted: the end of year 9999 UTC.
MAX_FIRE_AT = 253402300799


def check_fires(fires: Sequence[ScheduleFire]) -> None:
    """Refuse a batch of fires that no store may record (ValueError naming the fire):
    a schedule name that is not a non-empty str of at most :data:`MAX_SCHEDULE_NAME`,
    a fire time that is not whole seconds (an int, never a float two machines could
    compute differently) between 0 and :data:`MAX_FIRE_AT`."""
    for index, f in enumerate(fires):
        name = f.schedule
        if not isinstance(name, str) or not name or len(name) > MAX_SCHEDULE_NAME:
            raise ValueError(
                f"fires[{index}]: expected schedule to be a non-empty str of at most "
                f"{MAX_SCHEDULE_NAME} characters, got {name!r:.80}"
            )
        at = f.fire_at
        if type(at) is not int or not 0 <= at <= MAX_FIRE_AT:
            raise ValueError(
                f"fires[{index}] of schedule {name!r}: expected fire_at to be whole epoch "
                f"seconds (an int from 0 to {MAX_FIRE_AT}), got {at!r}"
            )


def unique_fires(fires: Sequence[ScheduleFire]) -> list[bool]:
    """For each fire of a batch, whether it is the first naming its ``(schedule,
    fire_at)``: a later one of the same batch is skipped like a recorded one."""
    seen: set[tuple[str, int]] = set()
    out = []
    for f in fires:
        key = (f.schedule, f.fire_at)
        out.append(key not in seen)
        seen.add(key)
    return out


def fire_record(row: Sequence[Any]) -> FireRecord | None:
    """A FireRecord from a row of :data:`FIRE_COLUMNS`; None for a row that does not
    read as one (written by hand: a name that is not text, a fire time that is not whole
    seconds in range, a job id that is not text, a time that is not a finite number)."""
    schedule, at, job_id, recorded = row
    if isinstance(at, float) and at.is_integer():
        at = int(at)  # an integral REAL written by hand into SQLite
    if (
        not isinstance(schedule, str)
        or not schedule
        or type(at) is not int
        or not 0 <= at <= MAX_FIRE_AT
        or not isinstance(job_id, str)
        or not isinstance(recorded, int | float)
        or isinstance(recorded, bool)
        or not math.isfinite(recorded)
    ):
        return None
    return FireRecord(schedule, at, job_id, float(recorded))


def last_fires(rows: Iterable[Sequence[Any]]) -> dict[str, FireRecord]:
    """The latest readable fire record of each schedule among ``rows``."""
    out: dict[str, FireRecord] = {}
    for row in rows:
        record = fire_record(row)
        if record is None:
            continue
        seen = out.get(record.schedule)
        if seen is None or record.fire_at > seen.fire_at:
            out[record.schedule] = record
    return dict(sorted(out.items()))
