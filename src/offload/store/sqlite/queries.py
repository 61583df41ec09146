"""The SQLite store's SQL: every statement as a constant, or a small builder where the
number of bound values varies. Parameters are ``?`` (or ``:name`` where noted); rules both
stores share (column lists, derived states, filters) come from ``store/rules.py``.
"""

from __future__ import annotations

from offload.store import rules
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
    " max_attempts, created_at, run_at, timeout, options, unique_key)"
    " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# -- claims ------------------------------------------------------------------------------------
_CLAIM_SET = (
    "UPDATE offload_jobs SET state = 'running', attempt = attempt + 1,"
    " worker_id = ?, leased_until = ?, started_at = ?, cancel_requested = 0"
)


def claim_due(queues: int, tasks: int) -> str:
    """Claim due jobs of ``queues`` queues (each bound as: queue, now, *tasks, limit; then
    the limit once more when there are several queues), after the worker, lease end and
    now of :data:`_CLAIM_SET`. Returns the claim columns and ``run_at``."""
    one = (
        "SELECT id, priority, run_at FROM offload_jobs WHERE state = 'queued'"
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
RENEW = (
    "UPDATE offload_jobs SET leased_until = ? WHERE id = ? AND attempt = ?"
    " AND state = 'running' AND worker_id = ? RETURNING cancel_requested"
)
EXPIRED = (
    "SELECT id, attempt, crashes, worker_id FROM offload_jobs"
    " WHERE state = 'running' AND leased_until < ?"
)
RESCUE = (
    "UPDATE offload_jobs SET state = ?, crashes = crashes + 1, error = ?,"
    " leased_until = NULL, worker_id = NULL, run_at = min(run_at, ?),"
    " finished_at = CASE WHEN ? = 'quarantined' THEN ? END"
    " WHERE id = ? AND attempt = ? AND state = 'running'"
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
#: Run again (bound: delay, now + delay, now, errors, crashes, error, id, attempt). Run
#: again at once (a crash, a requeue at shutdown) keeps the job's place in line: it is not
#: sent behind every job that became due while it ran.
REQUEUE = (
    "UPDATE offload_jobs SET state = 'queued',"
    " run_at = CASE WHEN ? > 0 THEN ? ELSE min(run_at, ?) END,"
    " errors = errors + ?, crashes = crashes + ?, error = coalesce(?, error),"
    " leased_until = NULL, worker_id = NULL"
    " WHERE id = ? AND attempt = ? AND state = 'running'"
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
#: Jobs by queue and state as a reader sees it (bound: now).
COUNTS = f"SELECT queue, {rules.state_sql('?')} AS s, count(*) FROM offload_jobs GROUP BY queue, s"


def queues_of(ids: int) -> str:
    return f"SELECT DISTINCT queue FROM offload_jobs WHERE id IN ({marks(ids)})"


# -- cancel, retry, delete, prune --------------------------------------------------------------
STATE_AND_ATTEMPT = "SELECT state, attempt FROM offload_jobs WHERE id = ?"
CANCEL_QUEUED = (
    "UPDATE offload_jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'"
)
REQUEST_CANCEL = "UPDATE offload_jobs SET cancel_requested = 1 WHERE id = ?"
RETRY = (
    "UPDATE offload_jobs SET state = 'queued', run_at = ?, errors = 0,"
    " crashes = 0, error = NULL, result = NULL, finished_at = NULL,"
    f" cancel_requested = 0 WHERE id = ? AND state IN {FINISHED_STATES_SQL} RETURNING attempt"
)
DELETE_JOB = "DELETE FROM offload_jobs WHERE id = ? AND state != 'running' RETURNING id"
DELETE_EVENTS = "DELETE FROM offload_events WHERE job_id = ?"
DELETE_MESSAGES = "DELETE FROM offload_messages WHERE job_id = ?"


def prune_jobs(states: int) -> str:
    """Delete finished jobs (bound: *states, cutoff); returns their ids."""
    return (
        f"DELETE FROM offload_jobs WHERE state IN ({marks(states)}) AND finished_at < ?"
        " RETURNING id"
    )


def delete_events_of(ids: int) -> str:
    return f"DELETE FROM offload_events WHERE job_id IN ({marks(ids)})"


def delete_messages_of(ids: int) -> str:
    return f"DELETE FROM offload_messages WHERE job_id IN ({marks(ids)})"


# -- processes ---------------------------------------------------------------------------------
HEARTBEAT = (
    f"INSERT INTO offload_processes ({rules.PROCESS_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
    " served = excluded.served, failed = excluded.failed,"
    " current_job = excluded.current_job, rss = excluded.rss,"
    " peak_rss = max(offload_processes.peak_rss, excluded.peak_rss),"
    " info = excluded.info, stopped_at = NULL"
)
STOP_PROCESS = "UPDATE offload_processes SET stopped_at = ?, current_job = NULL WHERE id = ?"
LIST_PROCESSES = f"SELECT {rules.PROCESS_COLUMNS} FROM offload_processes ORDER BY started_at, id"
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
