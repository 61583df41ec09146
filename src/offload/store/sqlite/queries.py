"""The SQLite store's SQL: every statement as a constant, or a small builder where the
number of bound values varies. Parameters are ``?`` (or ``:name`` where noted); rules both
stores share (column lists, derived states, filters) come from ``store/rules.py``.
"""

from __future__ import annotations

from offload.store import group_rules, rules
from offload.store.rules import ACTIVE_STATES_SQL, CLAIM_COLUMNS, FINISHED_STATES_SQL, JOB_COLUMNS


def marks(n: int) -> str:
    """``n`` comma-separated ``?``."""
    return ",".join("?" * n)


# -- enqueue -----------------------------------------------------------------------------------
ACTIVE_WITH_KEY = (
    f"SELECT id FROM offload_jobs WHERE unique_key = ? AND state IN {ACTIVE_STATES_SQL}"
)
INSERT_JOB = (
    "INSERT INTO offload_jobs (id, task, queue, state, priority, args, kwargs,"
    " max_attempts, created_at, run_at, timeout, options, unique_key, limit_key, limit_max)"
    " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# -- windowed unique keys and debounce (see jobs._insert_keyed) ------------------------------
KEY_GET = "SELECT job_id, until FROM offload_keys WHERE key = ?"
#: Bound: key, job id, until (NULL for a debounce key).
KEY_SET = (
    "INSERT INTO offload_keys (key, job_id, until) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, until = excluded.until"
)
KEY_JOB = "SELECT state, task, attempt FROM offload_jobs WHERE id = ?"
#: The waiting job of a burst takes the last arguments and runs no earlier than asked.
#: Bound: args, kwargs, run_at, id, task.
DEBOUNCE_MERGE = (
    "UPDATE offload_jobs SET args = ?, kwargs = ?, run_at = max(run_at, ?)"
    " WHERE id = ? AND state = 'queued' AND attempt = 0 AND task = ?"
)
#: Key rows past their use (bound: now, limit): a window that ended, or a debounce key
#: whose job is no longer waiting.
PRUNE_KEYS = (
    "DELETE FROM offload_keys WHERE key IN (SELECT k.key FROM offload_keys k"
    " WHERE (k.until IS NOT NULL AND k.until < ?) OR (k.until IS NULL AND NOT EXISTS"
    " (SELECT 1 FROM offload_jobs j WHERE j.id = k.job_id AND j.state = 'queued')) LIMIT ?)"
)

# -- claims ------------------------------------------------------------------------------------
#: Bound: worker, lease end (wall clock), now, boot id, lease end (monotonic clock). A new
#: attempt reports its own progress: what the last one reported is cleared.
_CLAIM_SET = (
    "UPDATE offload_jobs SET state = 'running', attempt = attempt + 1,"
    " worker_id = ?, leased_until = ?, started_at = ?, lease_boot = ?, lease_mono = ?,"
    " cancel_requested = 0, progress_current = 0, progress_total = NULL,"
    " progress_message = NULL"
)


def claim_due(queues: int, tasks: int) -> str:
    """Claim due jobs of ``queues`` queues (each bound as: queue, now, *tasks, limit; then
    the limit once more when there are several queues), after the values of
    :data:`_CLAIM_SET`. Returns the claim columns and ``run_at``."""
    one = (
        # Pinned: with other indexes on (queue, run_at) the planner may pick one of them
        # and sort every due row on each claim (75 times slower at 100,000 queued).
        "SELECT id, priority, run_at FROM offload_jobs INDEXED BY offload_jobs_claim"
        " WHERE state = 'queued'"
        f" AND queue = ? AND run_at <= ? AND task IN ({marks(tasks)})"
        " ORDER BY priority DESC, run_at, id LIMIT ?"
    )
    # One index range per queue, merged: a single "queue IN (...)" would sort every
    # due row of every queue on each claim.
    if queues == 1:
        select = f"SELECT id FROM ({one})"
    else:
        union = " UNION ALL ".join(f"SELECT * FROM ({one})" for _ in range(queues))
        select = f"SELECT id FROM ({union}) ORDER BY priority DESC, run_at, id LIMIT ?"
    return f"{_CLAIM_SET} WHERE id IN ({select}) RETURNING {CLAIM_COLUMNS}, run_at"


# -- claims under per-key limits (see runs._claim_limited) ---------------------------------------
#: Is any limited job waiting? When none is, a claim takes the one-statement path.
ANY_LIMITED = (
    "SELECT 1 FROM offload_jobs INDEXED BY offload_jobs_limited"
    " WHERE state = 'queued' AND limit_key IS NOT NULL LIMIT 1"
)


def pick_due(queues: int, tasks: int, full: int) -> str:
    """The due jobs a claim would take, in claim order, with their limits, leaving out the
    jobs of ``full`` keys (bound per queue: queue, now, *tasks, *full keys, limit; then
    the limit once more when there are several queues)."""
    skip = f" AND (limit_key IS NULL OR limit_key NOT IN ({marks(full)}))" if full else ""
    one = (
        "SELECT id, limit_key, limit_max, priority, run_at FROM offload_jobs"
        " INDEXED BY offload_jobs_claim WHERE state = 'queued'"
        f" AND queue = ? AND run_at <= ? AND task IN ({marks(tasks)}){skip}"
        " ORDER BY priority DESC, run_at, id LIMIT ?"
    )
    if queues == 1:
        return f"SELECT id, limit_key, limit_max FROM ({one})"
    union = " UNION ALL ".join(f"SELECT * FROM ({one})" for _ in range(queues))
    return (
        f"SELECT id, limit_key, limit_max FROM ({union}) ORDER BY priority DESC, run_at, id LIMIT ?"
    )


def pick_ids(ids: int, queues: int, tasks: int) -> str:
    """Those of ``ids`` that are due, in claim order, with their limits (bound: *ids, now,
    *queues, *tasks)."""
    return (
        f"SELECT id, limit_key, limit_max FROM offload_jobs WHERE id IN ({marks(ids)})"
        " AND state = 'queued' AND run_at <= ?"
        f" AND queue IN ({marks(queues)}) AND task IN ({marks(tasks)})"
        " ORDER BY priority DESC, run_at, id"
    )


def running_under(keys: int) -> str:
    """How many jobs run under each of ``keys`` limit keys."""
    return (
        "SELECT limit_key, count(*) FROM offload_jobs INDEXED BY offload_jobs_limit"
        f" WHERE state = 'running' AND limit_key IN ({marks(keys)}) GROUP BY limit_key"
    )


def claim_listed(ids: int) -> str:
    """Claim ``ids`` jobs picked in this transaction (bound: the values of
    :data:`_CLAIM_SET`, then *ids); the claim columns and ``run_at``."""
    return (
        f"{_CLAIM_SET} WHERE id IN ({marks(ids)}) AND state = 'queued'"
        f" RETURNING {CLAIM_COLUMNS}, run_at"
    )


def claim_ids(ids: int, queues: int, tasks: int) -> str:
    """Claim those of ``ids`` jobs that are due (bound as: *ids, now, *queues, *tasks)."""
    return (
        f"{_CLAIM_SET} WHERE id IN ({marks(ids)}) AND state = 'queued' AND run_at <= ?"
        f" AND queue IN ({marks(queues)}) AND task IN ({marks(tasks)})"
        f" RETURNING {CLAIM_COLUMNS}"
    )


INSERT_STARTED = (
    "INSERT INTO offload_events (job_id, at, attempt, kind, worker_id)"
    " VALUES (?, ?, ?, 'started', ?)"
)

# -- leases ------------------------------------------------------------------------------------
#: Bound: lease end (wall clock), boot id, lease end (monotonic clock), id, attempt, worker.
RENEW = (
    "UPDATE offload_jobs SET leased_until = ?, lease_boot = ?, lease_mono = ?"
    " WHERE id = ? AND attempt = ? AND state = 'running' AND worker_id = ?"
    " RETURNING cancel_requested"
)
#: Running jobs whose lease expired (bound by name: boot, mono, now). A lease taken on
#: this boot ends by the monotonic clock, which wall-clock steps do not move; one taken
#: on an earlier boot has ended (its owner died with the host); without a boot id on
#: either side (not Linux), or where the row holds something else, by the wall clock.
EXPIRED = (
    "SELECT id, attempt, crashes, worker_id, cancel_requested, queue FROM offload_jobs"
    " WHERE state = 'running' AND CASE"
    " WHEN :boot IS NULL OR typeof(lease_boot) <> 'text'"
    " OR typeof(lease_mono) NOT IN ('real', 'integer') THEN leased_until < :now"
    " WHEN lease_boot = :boot THEN lease_mono < :mono"
    " ELSE 1 END"
)
#: Bound by name: state, error, now, id, attempt. Back in the queue, the job shows no
#: progress until its next attempt reports some.
RESCUE = (
    "UPDATE offload_jobs SET state = :state, crashes = crashes + 1, error = :error,"
    " leased_until = NULL, worker_id = NULL, run_at = min(run_at, :now),"
    " finished_at = CASE WHEN :state = 'queued' THEN NULL ELSE :now END,"
    " progress_current = CASE WHEN :state = 'queued' THEN 0 ELSE progress_current END,"
    " progress_total = CASE WHEN :state = 'queued' THEN NULL ELSE progress_total END,"
    " progress_message = CASE WHEN :state = 'queued' THEN NULL ELSE progress_message END"
    " WHERE id = :id AND attempt = :attempt AND state = 'running'"
)

# -- events ------------------------------------------------------------------------------------
INSERT_EVENT = (
    "INSERT INTO offload_events (job_id, at, attempt, kind, worker_id, message)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

# -- writes of a run: progress, messages, saved values, outcomes --------------------------------
SET_PROGRESS = (
    "UPDATE offload_jobs SET progress_current = ?, progress_total = ?,"
    " progress_message = coalesce(?, progress_message)"
    " WHERE id = ? AND attempt = ? AND state = 'running'"
)
ADD_MESSAGE = (
    "INSERT INTO offload_messages (job_id, at, attempt, text)"
    " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM offload_jobs"
    " WHERE id = ? AND attempt = ? AND state = 'running')"
)
RUNNING_SAVED = "SELECT saved FROM offload_jobs WHERE id = ? AND attempt = ? AND state = 'running'"
SET_SAVED = "UPDATE offload_jobs SET saved = ? WHERE id = ?"
#: Run again (bound by name: delay, now, errors, crashes, error, id, attempt); returns
#: the state the job is in now. Run again at once (a crash, a requeue at shutdown) keeps
#: the job's place in line: it is not sent behind every job that became due while it ran.
#: Back in the queue the job shows no progress until its next attempt reports some. A job
#: whose cancel was requested is not queued again: it ends ``cancelled`` (see rules.py).
REQUEUE = (
    "UPDATE offload_jobs SET"
    " state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,"
    " run_at = CASE WHEN cancel_requested THEN run_at"
    " WHEN :delay > 0 THEN :now + :delay ELSE min(run_at, :now) END,"
    " finished_at = CASE WHEN cancel_requested THEN :now ELSE finished_at END,"
    " worker_id = CASE WHEN cancel_requested THEN worker_id END,"
    " progress_current = CASE WHEN cancel_requested THEN progress_current ELSE 0 END,"
    " progress_total = CASE WHEN cancel_requested THEN progress_total END,"
    " progress_message = CASE WHEN cancel_requested THEN progress_message END,"
    " errors = errors + :errors, crashes = crashes + :crashes,"
    " error = coalesce(:error, error), leased_until = NULL"
    " WHERE id = :id AND attempt = :attempt AND state = 'running' RETURNING state"
)
#: End for good (bound: state, result, error, now, errors, crashes, id, attempt).
FINISH = (
    "UPDATE offload_jobs SET state = ?, result = ?, error = ?, finished_at = ?,"
    " errors = errors + ?, crashes = crashes + ?, leased_until = NULL"
    " WHERE id = ? AND attempt = ? AND state = 'running'"
)
JOB_EXISTS = "SELECT 1 FROM offload_jobs WHERE id = ?"

# -- reads -------------------------------------------------------------------------------------
GET_JOB = f"SELECT {JOB_COLUMNS} FROM offload_jobs WHERE id = ?"


def list_jobs(where: str) -> str:
    """Jobs newest first under a ``WHERE`` clause from ``rules.job_filter_sql`` (named
    parameters; ``:limit`` last)."""
    return f"SELECT {JOB_COLUMNS} FROM offload_jobs {where} ORDER BY id DESC LIMIT :limit"


JOB_EVENTS = (
    "SELECT at, attempt, kind, worker_id, message FROM offload_events WHERE job_id = ? ORDER BY seq"
)
JOB_MESSAGES = (
    "SELECT at, attempt, text FROM (SELECT seq, at, attempt, text FROM offload_messages"
    " WHERE job_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
)
# -- counts by queue and state (migration 0007, store/sqlite/counts.py) -----------------------
#: Bound: queue, state, change.
COUNT_ADD = (
    "INSERT INTO offload_counts (queue, state, n) VALUES (?, ?, ?)"
    " ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n"
)
#: The kept counts as the jobs table has them (what offload_counts must equal).
RECOUNT = (
    "SELECT queue, state, count(*) FROM offload_jobs WHERE state <> 'queued' GROUP BY queue, state"
)
COUNTS_CLEAR = "DELETE FROM offload_counts"
COUNTS_REBUILD = f"INSERT INTO offload_counts (queue, state, n) {RECOUNT}"
#: Jobs by queue and stored state (bound: now), in one statement (one snapshot): the
#: counts the writes keep, then the queued ones by queue and how many of them are
#: scheduled (job_counts moves those out of queued), from one walk of the claim index,
#: which holds the queued jobs only. ``later`` is rules.scheduled_sql among queued jobs,
#: spelled on run_at alone: naming ``state`` there would read every row for it.
COUNTS = (
    "WITH waiting AS MATERIALIZED (SELECT queue, count(*) AS n, total(run_at > ?) AS later"
    " FROM offload_jobs INDEXED BY offload_jobs_claim WHERE state = 'queued' GROUP BY queue)"
    " SELECT queue, state, n FROM offload_counts WHERE n <> 0"
    " UNION ALL SELECT queue, 'queued', n FROM waiting"
    " UNION ALL SELECT queue, 'scheduled', later FROM waiting"
)
#: Finished jobs by minute and state since a moment (bound: the moment), read from the
#: retention index, which holds the finished ones only (no scan of the whole table).
FINISHED_BY_MINUTE = (
    "SELECT CAST(finished_at / 60 AS INTEGER) * 60, state, count(*) FROM offload_jobs"
    f" WHERE state IN {FINISHED_STATES_SQL} AND finished_at >= ? GROUP BY 1, 2"
)
#: The run_at of a queue's oldest waiting job (bound by name: queue), from the claim
#: index, which orders a queue's jobs by priority first: a plain min(run_at) would read
#: every waiting job of the queue (and its row, for the state), so this steps from one
#: priority to the next and takes the earliest run_at of each, a few seeks per priority.
OLDEST_QUEUED = (
    "WITH RECURSIVE p(v) AS ("
    " SELECT max(priority) FROM offload_jobs WHERE state = 'queued' AND queue = :queue"
    " UNION ALL SELECT (SELECT max(priority) FROM offload_jobs"
    " WHERE state = 'queued' AND queue = :queue AND priority < p.v) FROM p WHERE p.v IS NOT NULL)"
    " SELECT min((SELECT run_at FROM offload_jobs WHERE state = 'queued' AND queue = :queue"
    " AND priority = p.v ORDER BY run_at LIMIT 1)) FROM p WHERE p.v IS NOT NULL"
)


def queues_of(ids: int) -> str:
    return f"SELECT DISTINCT queue FROM offload_jobs WHERE id IN ({marks(ids)})"


# -- cancel, retry, delete, prune --------------------------------------------------------------
STATE_AND_ATTEMPT = "SELECT state, attempt, group_id, queue FROM offload_jobs WHERE id = ?"
CANCEL_QUEUED = (
    "UPDATE offload_jobs SET state = 'cancelled', finished_at = ?"
    " WHERE id = ? AND state IN ('queued', 'waiting')"
)
REQUEST_CANCEL = "UPDATE offload_jobs SET cancel_requested = 1 WHERE id = ?"
RETRY = (
    "UPDATE offload_jobs SET state = 'queued', run_at = ?, errors = 0,"
    " crashes = 0, error = NULL, result = NULL, finished_at = NULL,"
    " progress_current = 0, progress_total = NULL, progress_message = NULL,"
    f" cancel_requested = 0 WHERE id = ? AND state IN {FINISHED_STATES_SQL} RETURNING attempt"
)
DELETE_JOB = (
    "DELETE FROM offload_jobs WHERE id = ? AND state != 'running' RETURNING state, group_id, queue"
)
DELETE_EVENTS = "DELETE FROM offload_events WHERE job_id = ?"
DELETE_MESSAGES = "DELETE FROM offload_messages WHERE job_id = ?"


def prune_jobs(states: int) -> str:
    """Delete finished jobs (bound: *states, cutoff); returns their ids, queues and
    states."""
    return (
        f"DELETE FROM offload_jobs WHERE state IN ({marks(states)}) AND finished_at < ?"
        " RETURNING id, queue, state"
    )


def delete_events_of(ids: int) -> str:
    return f"DELETE FROM offload_events WHERE job_id IN ({marks(ids)})"


def delete_messages_of(ids: int) -> str:
    return f"DELETE FROM offload_messages WHERE job_id IN ({marks(ids)})"


# -- processes ---------------------------------------------------------------------------------
#: Bound: the process columns, then the writer's boot id and monotonic clock.
HEARTBEAT = (
    f"INSERT INTO offload_processes ({rules.PROCESS_COLUMNS}, boot_id, beat_mono)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
    " served = excluded.served, failed = excluded.failed,"
    " current_job = excluded.current_job, rss = excluded.rss,"
    " peak_rss = max(offload_processes.peak_rss, excluded.peak_rss),"
    " info = excluded.info, stopped_at = NULL, boot_id = excluded.boot_id,"
    " beat_mono = excluded.beat_mono"
)
STOP_PROCESS = "UPDATE offload_processes SET stopped_at = ?, current_job = NULL WHERE id = ?"
#: The process columns, then each row's boot id, monotonic heartbeat and task names.
LIST_PROCESSES = (
    f"SELECT {rules.PROCESS_COLUMNS}, boot_id, beat_mono, tasks FROM offload_processes"
    " ORDER BY started_at, id"
)
PUBLISH_TASKS = "UPDATE offload_processes SET tasks = ? WHERE id = ?"
#: Queued and scheduled jobs by task.
WAITING_BY_TASK = "SELECT task, count(*) FROM offload_jobs WHERE state = 'queued' GROUP BY task"
PRUNE_PROCESSES = "DELETE FROM offload_processes WHERE coalesce(stopped_at, heartbeat_at) < ?"

# -- locks -------------------------------------------------------------------------------------
TAKE_LOCK = (
    "INSERT INTO offload_locks (name, owner, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    " expires_at = excluded.expires_at"
    " WHERE offload_locks.owner = excluded.owner OR offload_locks.expires_at < ?"
)
CHANGES = "SELECT changes()"
RELEASE_LOCK = "DELETE FROM offload_locks WHERE name = ? AND owner = ?"

# -- checks ------------------------------------------------------------------------------------
INTEGRITY_CHECK = "PRAGMA integrity_check"

# -- retention: pruning finished jobs by policy --------------------------------------------------
#: The seconds a finished job's own ``retention`` option keeps it in its state (9e999: for
#: ever), or NULL when it stores none that can be read (the settings' retention applies).
#: Exactly the expression of migration 0003's index, which only this text can use.
RETENTION_KEEP = (
    "(CASE WHEN typeof(options) = 'text' AND instr(options, '\"retention\"') > 0"
    " AND json_valid(options) THEN CASE"
    " WHEN json_type(options, '$.retention.' || state) IN ('integer', 'real')"
    " AND json_extract(options, '$.retention.' || state) BETWEEN 0 AND 3162240000"
    " THEN json_extract(options, '$.retention.' || state)"
    " WHEN json_type(options, '$.retention.' || state) = 'null' THEN 9e999 END END)"
)
#: The index's own condition, repeated so the planner may use it with a bound state.
_PRUNABLE = f"state IN {FINISHED_STATES_SQL} AND state = ?"
#: The next retention stored on jobs of a state (bound: state, the previous one).
RETENTION_NEXT = (
    f"SELECT {RETENTION_KEEP} FROM offload_jobs WHERE {_PRUNABLE} AND {RETENTION_KEEP} > ?"
    f" ORDER BY {RETENTION_KEEP} LIMIT 1"
)


def _bucket(stored: bool) -> str:
    """Jobs of one state and stored retention finished before a cutoff (bound: state,
    [the stored retention,] cutoff)."""
    keep = f"{RETENTION_KEEP} = ?" if stored else f"{RETENTION_KEEP} IS NULL"
    return f"{_PRUNABLE} AND {keep} AND finished_at < ?"


def prune_bucket(stored: bool) -> str:
    """Delete the oldest of a bucket (bound as :func:`_bucket`, then the limit)."""
    return (
        f"DELETE FROM offload_jobs WHERE id IN (SELECT id FROM offload_jobs"
        f" WHERE {_bucket(stored)} ORDER BY finished_at LIMIT ?) RETURNING id, queue, state"
    )


def count_bucket(stored: bool) -> str:
    """The jobs of a bucket, and their events and messages (bound as :func:`_bucket`,
    three times)."""
    ids = f"SELECT id FROM offload_jobs WHERE {_bucket(stored)}"
    return (
        f"SELECT (SELECT count(*) FROM offload_jobs WHERE {_bucket(stored)}),"
        f" (SELECT count(*) FROM offload_events WHERE job_id IN ({ids})),"
        f" (SELECT count(*) FROM offload_messages WHERE job_id IN ({ids}))"
    )


# -- schedules ---------------------------------------------------------------------------------
FIRE_RECORDED = "SELECT 1 FROM offload_schedule_fires WHERE schedule = ? AND fire_at = ?"
#: Bound: schedule, fire time, job id, now.
INSERT_FIRE = f"INSERT INTO offload_schedule_fires ({rules.FIRE_COLUMNS}) VALUES (?, ?, ?, ?)"
#: The latest fire of each schedule (SQLite takes the other columns from the row of the
#: max). Rows whose fire time is not an integer (written by hand) are not candidates.
LAST_FIRES = (
    "SELECT schedule, max(fire_at), job_id, recorded_at FROM offload_schedule_fires"
    " WHERE typeof(fire_at) = 'integer' GROUP BY schedule"
)
#: Fires recorded before a cutoff that a later fire of their schedule supersedes (bound:
#: the cutoff).
PRUNE_FIRES = (
    "DELETE FROM offload_schedule_fires WHERE recorded_at < ? AND EXISTS (SELECT 1"
    " FROM offload_schedule_fires AS later WHERE later.schedule = offload_schedule_fires.schedule"
    " AND later.fire_at > offload_schedule_fires.fire_at)"
)
# -- groups (counters and completion: triggers of migration 0005) -------------------------------
GROUP_COLUMNS = group_rules.GROUP_COLUMNS
#: Bound by name: the columns of a new group (started and stopped decided by the caller).
INSERT_GROUP = (
    "INSERT INTO offload_groups (id, name, created_at, started, after_id, stop_on_failure,"
    " callback_id, callback_task, callback_queue, callback_priority, callback_max_attempts,"
    " callback_timeout, callback_options) VALUES (:id, :name, :now, :started, :after,"
    " :stop_on_failure, :callback_id, :task, :queue, :priority, :max_attempts, :timeout,"
    " :options)"
)
#: Whether the group named as ``after`` is complete, and stops the stages after it.
GROUP_PREVIOUS = (
    "SELECT completed_at IS NOT NULL, stop_on_failure = 1 AND failed > 0"
    " FROM offload_groups WHERE id = ?"
)
#: Stopped by the stage before it (fires the completion trigger).
STOP_GROUP = "UPDATE offload_groups SET stopped = 1 WHERE id = ?"
GET_GROUP = f"SELECT {GROUP_COLUMNS} FROM offload_groups WHERE id = ?"
LIST_GROUPS = f"SELECT {GROUP_COLUMNS} FROM offload_groups ORDER BY id DESC LIMIT ?"
LIST_GROUPS_BEFORE = (
    f"SELECT {GROUP_COLUMNS} FROM offload_groups WHERE id < ? ORDER BY id DESC LIMIT ?"
)
#: Bound: the job columns, the member's state and its group; an id already stored is
#: skipped (a retried member adding the same members).
INSERT_MEMBER = (
    "INSERT INTO offload_jobs (id, task, queue, state, priority, args, kwargs,"
    " max_attempts, created_at, run_at, timeout, options, group_id, limit_key, limit_max)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
#: Bound: members inserted, group (fires the completion trigger).
GROW_GROUP = "UPDATE offload_groups SET total = total + ? WHERE id = ?"
#: Is any group not complete? Only then can a run's outcome move a group's counters.
ANY_OPEN_GROUP = (
    "SELECT 1 FROM offload_groups INDEXED BY offload_groups_open WHERE completed_at IS NULL LIMIT 1"
)


def groups_of(ids: int) -> str:
    """The groups of those of ``ids`` jobs that are members (bound: the ids)."""
    return (
        f"SELECT id, group_id FROM offload_jobs WHERE id IN ({marks(ids)}) AND group_id IS NOT NULL"
    )


def queue_of_each(ids: int) -> str:
    """The queue of each of ``ids`` jobs (bound: the ids)."""
    return f"SELECT id, queue FROM offload_jobs WHERE id IN ({marks(ids)})"


#: A member became final or final no more (bound: succeeded delta, failed delta, group):
#: counted while its group is not complete (the completion trigger may fire).
COUNT_MEMBER = (
    "UPDATE offload_groups SET succeeded = succeeded + ?, failed = failed + ?"
    " WHERE id = ? AND completed_at IS NULL"
)
#: A member deleted before it finished is no member any more (bound: group).
DROP_MEMBER = "UPDATE offload_groups SET total = total - 1 WHERE id = ? AND completed_at IS NULL"
SEAL_GROUP = "UPDATE offload_groups SET sealed = 1 WHERE id = ? AND sealed = 0"
GROUP_OF_JOB = "SELECT group_id FROM offload_jobs WHERE id = ?"
