"""The PostgreSQL store's SQL: every statement as text, with the parameters each binds
(those about groups are in ``group_queries.py``).

Table names are written ``{jobs}``, ``{events}``, ``{messages}``, ``{processes}``,
``{locks}``, ``{keys}``, ``{schedule_fires}``, ``{groups}``, ``{counts}``,
``{count_changes}``, ``{schema_version}`` (and ``{schema}``); ``{now}`` is
the transaction's timestamp on the server. :class:`Composer` fills them in for one
schema, always quoted as identifiers; every value is bound. Rules both stores share
(column lists, derived states, filters, outcome counters and texts) come from
``store/rules.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from offload.store import rules
from offload.store.rules import ACTIVE_STATES_SQL, CLAIM_COLUMNS, FINISHED_STATES_SQL
from offload.types import TERMINAL_STATES, JobState, Outcome

#: The transaction's timestamp on the server, as float epoch seconds.
NOW = "date_part('epoch', now())"

TABLES = (
    "jobs", "events", "messages", "processes", "locks", "keys", "schedule_fires", "groups",
    "counts", "count_changes", "schema_version",
)  # fmt: skip


class Composer:
    """Statements of this module made concrete for one schema (cached by text)."""

    def __init__(self, schema: str) -> None:
        self._names: dict[str, sql.Composable] = {
            name: sql.Identifier(schema, name) for name in TABLES
        }
        self._names["schema"] = sql.Identifier(schema)
        self._names["now"] = sql.SQL(NOW)
        self._queries: dict[str, sql.Composed] = {}

    def __call__(self, text: str) -> sql.Composed:
        """``text`` with ``{jobs}``, ``{events}``, ..., ``{schema}``, ``{now}`` filled in."""
        query = self._queries.get(text)
        if query is None:
            query = sql.SQL(text).format(**self._names)
            self._queries[text] = query
        return query


def float_or_none(value: float | None) -> float | None:
    """A float parameter (bound as ``float8``), or NULL."""
    return None if value is None else float(value)


# -- schema ------------------------------------------------------------------------------------
SERVER_CLOCK = "SELECT date_part('epoch', clock_timestamp())"
HAS_VERSION_TABLE = (
    "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'schema_version'"
)
SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM {schema_version}"
NO_STATEMENT_TIMEOUT = ("SET LOCAL statement_timeout = 0", "SET LOCAL lock_timeout = 0")
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(%s)"
CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS {schema_version} (version integer PRIMARY KEY,"
    " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
)
#: Migrations create their tables unqualified, in the schema.
SEARCH_PATH = "SET LOCAL search_path TO {schema}"
RECORD_VERSION = "INSERT INTO {schema_version} (version, name) VALUES (%s, %s)"

# -- wake-ups ----------------------------------------------------------------------------------
NOTIFY = "SELECT pg_notify(%s, %s)"

# -- enqueue -----------------------------------------------------------------------------------
#: Jobs without a unique key, all at once (bound: one array per column of ``t``).
INSERT_PLAIN = (
    "INSERT INTO {jobs} (id, task, queue, state, priority, args, kwargs,"
    " max_attempts, created_at, run_at, timeout, options, unique_key, limit_key, limit_max)"
    " SELECT id, task, queue, 'queued', priority, args, kwargs, max_attempts,"
    " {now}, coalesce(run_at, {now} + delay), timeout, options, NULL, limit_key, limit_max"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[],"
    " %s::text[], %s::int[], %s::float8[], %s::float8[], %s::float8[],"
    " %s::text[], %s::text[], %s::int[]) AS t(id, task, queue, priority, args, kwargs,"
    " max_attempts, run_at, delay, timeout, options, limit_key, limit_max)"
)
_INSERT_ONE = (
    "INSERT INTO {jobs} (id, task, queue, state, priority, args, kwargs,"
    " max_attempts, created_at, run_at, timeout, options, unique_key, limit_key, limit_max)"
    " VALUES (%(id)s, %(task)s, %(queue)s, 'queued', %(priority)s, %(args)s,"
    " %(kwargs)s, %(max_attempts)s, {now}, greatest(coalesce(%(run_at)s::float8, {now} +"
    " %(delay)s::float8), {now} + %(debounce)s::float8), %(timeout)s::float8, %(options)s,"
    " %(key)s, %(limit_key)s, %(limit_max)s)"
)
#: One job with a unique key; the id of the unfinished job that holds the key.
INSERT_UNIQUE = (
    f"WITH ins AS ({_INSERT_ONE}"
    " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL"
    f" AND state IN {ACTIVE_STATES_SQL} DO NOTHING RETURNING id)"
    " SELECT id FROM ins UNION ALL SELECT id FROM {jobs} WHERE unique_key = %(key)s"
    f" AND state IN {ACTIVE_STATES_SQL} AND NOT EXISTS (SELECT 1 FROM ins)"
)
#: One debounced job (its row holds no unique key: see ``NewJob.debounce``).
INSERT_DEBOUNCED = _INSERT_ONE

# -- windowed unique keys and debounce (see jobs._insert_keyed) --------------------------------
#: Take the key's row lock (every enqueue of the key waits here for the others to
#: commit): inserted as ``(key, id, until)`` when new. Returns the job holding it, whether
#: its window is still open, and whether the row is new (it holds this job's id).
KEY_LOCK = (
    "INSERT INTO {keys} (key, job_id, until) VALUES (%(key)s, %(id)s, %(until)s::float8)"
    " ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key"
    " RETURNING job_id, coalesce(until > {now}, false), job_id = %(id)s"
)
KEY_SET = "UPDATE {keys} SET job_id = %s, until = {now} + %s::float8 WHERE key = %s"
KEY_DROP = "DELETE FROM {keys} WHERE key = %s"
KEY_JOB = "SELECT state FROM {jobs} WHERE id = %s"
#: The waiting job of a burst takes the last arguments and runs no earlier than asked.
DEBOUNCE_MERGE = (
    "UPDATE {jobs} SET args = %(args)s, kwargs = %(kwargs)s, run_at = greatest(run_at,"
    " coalesce(%(run_at)s::float8, {now} + %(delay)s::float8), {now} + %(debounce)s::float8)"
    " WHERE id = %(holder)s AND state = 'queued' AND attempt = 0 AND task = %(task)s"
    " RETURNING id"
)
#: Key rows past their use (bound: limit): a window that ended, or a debounce key whose
#: job is no longer waiting.
PRUNE_KEYS = (
    "DELETE FROM {keys} WHERE key IN (SELECT k.key FROM {keys} k"
    " WHERE (k.until IS NOT NULL AND k.until < {now}) OR (k.until IS NULL AND NOT EXISTS"
    " (SELECT 1 FROM {jobs} j WHERE j.id = k.job_id AND j.state = 'queued')) LIMIT %s)"
)


# -- claims ------------------------------------------------------------------------------------
#: Due queued jobs, one ordered index scan per queue (LATERAL), merged: "queue = ANY(...)"
#: would read and sort every due row of every queue on each claim. A queue's rows locked
#: here but not among the first ``limit`` are released at commit.
PICK_BY_QUEUE = (
    "SELECT j.id, j.limit_key FROM unnest(%(queues)s::text[]) AS q(name) CROSS JOIN LATERAL"
    " (SELECT id, priority, run_at, limit_key FROM {jobs} WHERE state = 'queued'"
    " AND queue = q.name AND run_at <= {now} AND task = ANY(%(tasks)s)"
    " AND (limit_key IS NULL OR limit_key <> ALL(%(full)s::text[]))"
    " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) j"
    " ORDER BY j.priority DESC, j.run_at, j.id LIMIT %(limit)s"
)
#: Those of the jobs ``%(ids)s`` that are due.
PICK_IDS = (
    "SELECT id, limit_key FROM {jobs} WHERE id = ANY(%(ids)s) AND state = 'queued'"
    " AND run_at <= {now} AND queue = ANY(%(queues)s) AND task = ANY(%(tasks)s)"
    " ORDER BY id FOR UPDATE SKIP LOCKED"
)
#: Jobs a claim under limits admitted (locked by this transaction already).
PICK_ADMITTED = "SELECT id, limit_key FROM {jobs} WHERE id = ANY(%(ids)s)"


def claim_ctes(pick: str, *, limited: bool = False) -> str:
    """The claim as CTEs (``picked``, ``claimed``, its events), for ``WITH ...``. A new
    attempt reports its own progress: what the last one reported is cleared.

    The picked ids are materialised once: as a plain "id IN (subquery)" the planner may
    rescan the locking subquery per row, and each rescan skips the rows this very
    statement just updated, claiming far more than the limit.

    A job with a concurrency limit is claimed only by a claim under limits
    (``limited``, see ``runs._claim_limited``), which counts what runs under its key
    first; any other claim leaves it queued and returns its id among the ``held``.
    """
    only = "" if limited else " AND picked.limit_key IS NULL"
    return (
        f"picked AS MATERIALIZED ({pick}),"
        " claimed AS (UPDATE {jobs} j SET state = 'running', attempt = j.attempt + 1,"
        " worker_id = %(worker)s, leased_until = {now} + %(lease)s::float8,"
        " started_at = {now}, cancel_requested = false, progress_current = 0,"
        " progress_total = NULL, progress_message = NULL"
        f" FROM picked WHERE j.id = picked.id AND j.state = 'queued'{only}"
        " RETURNING j.id, j.task, j.queue, j.args, j.kwargs, j.attempt, j.max_attempts,"
        " j.errors, j.crashes, j.timeout, j.options, j.priority, j.run_at),"
        " claim_ev AS (INSERT INTO {events} (job_id, at, attempt, kind, worker_id)"
        " SELECT id, {now}, attempt, 'started', %(worker)s FROM claimed),"
        " held AS (SELECT array_agg(id) AS ids FROM picked WHERE limit_key IS NOT NULL)"
    )


def claim(pick: str, *, limited: bool = False) -> str:
    """Claim the jobs ``pick`` selects. Every row starts with the ids of the limited jobs
    picked but left queued (NULL when none), then the claim columns and ``run_at`` of a
    claimed job (NULL on the one row of a claim that took none)."""
    return (
        f"WITH {claim_ctes(pick, limited=limited)}"
        f" SELECT held.ids, c.* FROM held LEFT JOIN"
        f" (SELECT {CLAIM_COLUMNS}, run_at FROM claimed) c ON true"
    )


#: Wait for the claims under one limit key to commit (bound: the key). Transaction-scoped:
#: released when the claim commits, so the next count sees what it claimed.
LOCK_LIMIT = "SELECT pg_advisory_xact_lock(1868983407, hashtext(%s))"
#: How many jobs run under each of the keys ``%s``.
RUNNING_UNDER = (
    "SELECT limit_key, count(*) FROM {jobs} WHERE state = 'running'"
    " AND limit_key = ANY(%s::text[]) GROUP BY limit_key"
)
#: The limited jobs a claim left queued that are still due, in claim order, with their
#: limits, locked.
PICK_LIMITED = (
    "SELECT id, limit_key, limit_max FROM {jobs} WHERE id = ANY(%s::text[])"
    " AND state = 'queued' AND run_at <= {now} ORDER BY priority DESC, run_at, id"
    " FOR UPDATE SKIP LOCKED"
)


def claim_params(
    worker_id: str,
    queues: Sequence[str],
    tasks: Sequence[str],
    limit: int,
    lease: float,
    ids: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "worker": worker_id,
        "lease": float(lease),
        "queues": list(dict.fromkeys(queues)),
        "tasks": list(tasks),
        "limit": limit,
        "ids": list(ids),
        "full": [],
    }


# -- leases ------------------------------------------------------------------------------------
RENEW = (
    "UPDATE {jobs} j SET leased_until = {now} + %s::float8"
    " FROM unnest(%s::text[], %s::int[]) AS r(id, attempt)"
    " WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = 'running'"
    " AND j.worker_id = %s RETURNING j.id, j.attempt, j.cancel_requested"
)
EXPIRED = (
    "SELECT id, attempt, crashes, worker_id, cancel_requested FROM {jobs}"
    " WHERE state = 'running' AND leased_until < {now}"
    " ORDER BY id FOR UPDATE SKIP LOCKED"
)
RESCUE = (
    "UPDATE {jobs} SET state = %(state)s, crashes = crashes + 1,"
    " error = %(error)s, leased_until = NULL, worker_id = NULL,"
    " run_at = least(run_at, {now}),"
    " finished_at = CASE WHEN %(state)s = 'queued' THEN NULL ELSE {now} END,"
    " progress_current = CASE WHEN %(state)s = 'queued' THEN 0 ELSE progress_current END,"
    " progress_total = CASE WHEN %(state)s = 'queued' THEN NULL ELSE progress_total END,"
    " progress_message = CASE WHEN %(state)s = 'queued' THEN NULL ELSE progress_message END"
    " WHERE id = %(id)s AND attempt = %(attempt)s AND state = 'running'"
)

# -- events ------------------------------------------------------------------------------------
INSERT_EVENT = (
    "INSERT INTO {events} (job_id, at, attempt, kind, worker_id, message)"
    " VALUES (%s, {now}, %s, %s, %s, %s)"
)

# -- writes of a run: saved values, progress, messages -----------------------------------------
RUNNING_SAVED = (
    "SELECT saved FROM {jobs} WHERE id = %s AND attempt = %s AND state = 'running' FOR UPDATE"
)
SET_SAVED = "UPDATE {jobs} SET saved = %s WHERE id = %s"
#: The latest progress of each run (bound: arrays of id, attempt, current, total, message).
SET_PROGRESS = (
    "UPDATE {jobs} j SET progress_current = u.current, progress_total = u.total,"
    " progress_message = coalesce(u.message, j.progress_message)"
    " FROM (SELECT DISTINCT ON (id) * FROM unnest(%s::text[],"
    " %s::int[], %s::float8[], %s::float8[], %s::text[])"
    " WITH ORDINALITY AS t(id, attempt, current, total, message, n)"
    " ORDER BY id, n DESC) u"
    " WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running'"
)
#: Log lines of running runs, in order (bound: arrays of id, attempt, text).
ADD_MESSAGES = (
    "INSERT INTO {messages} (job_id, at, attempt, text)"
    " SELECT m.id, {now}, m.attempt, m.text FROM unnest(%s::text[],"
    " %s::int[], %s::text[]) WITH ORDINALITY AS m(id, attempt, text, n)"
    " JOIN {jobs} j ON j.id = m.id AND j.attempt = m.attempt"
    " AND j.state = 'running' ORDER BY m.n"
)

# -- outcomes ----------------------------------------------------------------------------------
#: Outcomes, in order, as CTEs: ``o`` (the outcomes, numbered ``n``), ``u`` (the fenced
#: transitions that were accepted, by ``n``) and their events, "refused" for a stale
#: outcome of a job that exists. Only the first outcome of each run in the batch may apply
#: (``first``): a later one finds the run already ended, as it would one at a time.
#: Requeued jobs (``state = 'queued'``) keep their result, and their place in line when
#: they run again at once: they are not sent behind every job that became due while they
#: ran; they show no progress until their next attempt reports some. A requeue (``rq``)
#: of a job whose cancel was requested ends it ``cancelled`` instead (see rules.py), with
#: the event message ``o.not_retried``; ``u`` returns the state each job is in now.
OUTCOME_CTES = (
    "o AS (SELECT * FROM unnest(%(o_id)s::text[], %(o_attempt)s::int[], %(o_state)s::text[],"
    " %(o_result)s::text[], %(o_error)s::text[], %(o_delay)s::float8[], %(o_errs)s::int[],"
    " %(o_crashes)s::int[], %(o_kind)s::text[], %(o_worker)s::text[], %(o_reason)s::text[],"
    " %(o_refusal)s::text[], %(o_not_retried)s::text[], %(o_first)s::bool[])"
    " WITH ORDINALITY AS o(id, attempt, state, result, error, delay, errs, crashes, kind,"
    " worker, reason, refusal, not_retried, first, n)),"
    " u AS (UPDATE {jobs} j SET"
    " state = CASE WHEN o.state = 'queued' AND j.cancel_requested THEN 'cancelled'"
    " ELSE o.state END,"
    " run_at = CASE WHEN o.state <> 'queued' OR j.cancel_requested THEN j.run_at"
    " WHEN o.delay > 0 THEN {now} + o.delay ELSE least(j.run_at, {now}) END,"
    " result = CASE WHEN o.state = 'queued' THEN j.result ELSE o.result END,"
    " error = CASE WHEN o.state = 'queued' THEN coalesce(o.error, j.error) ELSE o.error END,"
    " finished_at = CASE WHEN o.state = 'queued' AND NOT j.cancel_requested"
    " THEN j.finished_at ELSE {now} END,"
    " worker_id = CASE WHEN o.state = 'queued' AND NOT j.cancel_requested"
    " THEN NULL ELSE j.worker_id END,"
    " progress_current = CASE WHEN o.state = 'queued' AND NOT j.cancel_requested"
    " THEN 0 ELSE j.progress_current END,"
    " progress_total = CASE WHEN o.state = 'queued' AND NOT j.cancel_requested"
    " THEN NULL ELSE j.progress_total END,"
    " progress_message = CASE WHEN o.state = 'queued' AND NOT j.cancel_requested"
    " THEN NULL ELSE j.progress_message END,"
    " errors = j.errors + o.errs, crashes = j.crashes + o.crashes, leased_until = NULL"
    " FROM o WHERE j.id = o.id AND j.attempt = o.attempt AND j.state = 'running' AND o.first"
    " RETURNING o.n, j.state),"
    " outcome_ev AS (INSERT INTO {events} (job_id, at, attempt, kind, worker_id, message)"
    " SELECT o.id, {now}, o.attempt,"
    f" CASE WHEN u.n IS NULL THEN '{rules.REFUSED}'"
    f" WHEN o.state = 'queued' AND u.state = 'cancelled' THEN '{rules.CANCELLED}'"
    " ELSE o.kind END, o.worker,"
    " CASE WHEN u.n IS NULL THEN o.refusal"
    " WHEN o.state = 'queued' AND u.state = 'cancelled' THEN o.not_retried ELSE o.reason END"
    " FROM o LEFT JOIN u ON u.n = o.n"
    " WHERE u.n IS NOT NULL OR EXISTS (SELECT 1 FROM {jobs} x WHERE x.id = o.id)"
    " ORDER BY o.n)"
)
#: The outcomes alone: the numbers (``n``, from 1) of the accepted ones, one row each.
WRITE_OUTCOMES = f"WITH {OUTCOME_CTES} SELECT n FROM u"
#: The outcomes and a claim of due jobs (:data:`PICK_BY_QUEUE`) in ONE statement: its
#: first column is the numbers of the accepted outcomes (an array, on every row), then
#: the claim columns of each claimed job and its ``run_at``, in no particular order (NULL
#: when none was claimed).
#:
#: The outcomes touch only rows that are running and the claim only rows that are queued,
#: so the two halves never meet in the statement's one snapshot. That also means a job an
#: outcome requeues to run now cannot be claimed by the same statement.
WRITE_OUTCOMES_AND_CLAIM = (
    f"WITH {OUTCOME_CTES}, {claim_ctes(PICK_BY_QUEUE)},"
    " acc AS (SELECT array_agg(u.n) AS a FROM u)"
    " SELECT acc.a, held.ids, c.* FROM acc CROSS JOIN held LEFT JOIN"
    f" (SELECT {CLAIM_COLUMNS}, run_at FROM claimed) c ON true"
)


def outcome_params(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """The parameters of :data:`OUTCOME_CTES`: one array per column of ``o``."""
    return {
        "o_id": [o.job_id for o in outcomes],
        "o_attempt": [o.attempt for o in outcomes],
        "o_state": [o.state.value for o in outcomes],
        "o_result": [o.result for o in outcomes],
        "o_error": [o.error for o in outcomes],
        "o_delay": [float(o.delay) for o in outcomes],
        "o_errs": [rules.outcome_errors(o) for o in outcomes],
        "o_crashes": [rules.outcome_crashes(o) for o in outcomes],
        "o_kind": [rules.outcome_kind(o) for o in outcomes],
        "o_worker": [o.worker_id for o in outcomes],
        "o_reason": [o.reason for o in outcomes],
        "o_refusal": [rules.refusal(o) for o in outcomes],
        "o_not_retried": [
            rules.outcome_not_retried(o) if o.state is JobState.QUEUED else "" for o in outcomes
        ],
        "o_first": rules.first_of_each_run(outcomes),
    }


def accepted(numbers: Sequence[int] | None, count: int) -> list[bool]:
    """For each of ``count`` outcomes in order, whether its number (from 1) is among the
    accepted ``numbers`` the statements return."""
    taken = set(numbers or ())
    return [n in taken for n in range(1, count + 1)]


# -- reads -------------------------------------------------------------------------------------
#: The job columns and the server's now (to derive the state a reader sees).
_JOB_COLUMNS_AND_NOW = f"{rules.JOB_COLUMNS}, {{now}}"
GET_JOB = f"SELECT {_JOB_COLUMNS_AND_NOW} FROM {{jobs}} WHERE id = %s"


def list_jobs(where: str) -> str:
    """Jobs newest first under a ``WHERE`` clause from ``rules.job_filter_sql`` (named
    parameters; ``%(limit)s`` last)."""
    return f"SELECT {_JOB_COLUMNS_AND_NOW} FROM {{jobs}} {where} ORDER BY id DESC LIMIT %(limit)s"


JOB_EVENTS = (
    "SELECT at, attempt, kind, worker_id, message FROM {events} WHERE job_id = %s ORDER BY seq"
)
JOB_MESSAGES = (
    "SELECT at, attempt, text FROM (SELECT seq, at, attempt, text FROM {messages}"
    " WHERE job_id = %s ORDER BY seq DESC LIMIT %s) m ORDER BY seq"
)
#: Jobs by queue and state, in one statement (one snapshot): the kept counts (their rows
#: in counts plus those in count_changes, migration 0007), then the queued ones by queue
#: and how many of them are scheduled (job_counts moves those out of queued), from one
#: walk of the claim index, which holds the queued jobs only.
COUNTS = (
    "WITH waiting AS MATERIALIZED (SELECT queue, count(*) AS n,"
    " count(*) FILTER (WHERE run_at > {now}) AS later FROM {jobs}"
    " WHERE state = 'queued' GROUP BY queue)"
    " SELECT queue, state, sum(n) FROM (SELECT queue, state, n FROM {counts}"
    " UNION ALL SELECT queue, state, n FROM {count_changes}) kept GROUP BY queue, state"
    " UNION ALL SELECT queue, 'queued', n FROM waiting"
    " UNION ALL SELECT queue, 'scheduled', later FROM waiting"
)
#: The lock the triggers take to fold count_changes into counts (bound: the schema).
COUNTS_LOCK = "SELECT pg_advisory_xact_lock(1868983408, hashtext(%s))"
#: The kept counts rebuilt from the jobs (job_recount), after COUNTS_LOCK, with the
#: jobs locked against writes (reads go on), so no change is counted twice or missed.
RECOUNT = (
    "LOCK TABLE {jobs} IN SHARE MODE",
    "DELETE FROM {count_changes}",
    "DELETE FROM {counts}",
    "INSERT INTO {counts} (queue, state, n) SELECT queue, state, count(*) FROM {jobs}"
    " WHERE state <> 'queued' GROUP BY queue, state",
)
#: Finished jobs by minute and state over the last minutes (bound: minutes - 1), on the
#: server's clock, from the index on finished_at.
FINISHED_BY_MINUTE = (
    "SELECT floor(finished_at / 60) * 60, state, count(*) FROM {jobs}"
    " WHERE finished_at IS NOT NULL AND finished_at >= floor({now} / 60) * 60 - %s * 60"
    f" AND state IN {FINISHED_STATES_SQL} GROUP BY 1, 2"
)
#: For each queue named (bound: a text array), the seconds since its oldest waiting
#: job's run_at (NULL: none waits), from the claim index.
QUEUE_LATENCY = (
    "SELECT q, {now} - (SELECT min(run_at) FROM {jobs} WHERE state = 'queued' AND queue = q)"
    " FROM unnest(%s::text[]) AS q"
)

# -- cancel, retry, delete, prune --------------------------------------------------------------
LOCK_FOR_CANCEL = "SELECT id, state, attempt FROM {jobs} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
CANCEL_QUEUED = (
    "UPDATE {jobs} SET state = 'cancelled', finished_at = {now}"
    " WHERE id = %s AND state IN ('queued', 'waiting')"
)
REQUEST_CANCEL = "UPDATE {jobs} SET cancel_requested = true WHERE id = %s"
RETRY = (
    "UPDATE {jobs} SET state = 'queued', run_at = {now}, errors = 0, crashes = 0,"
    " error = NULL, result = NULL, finished_at = NULL, cancel_requested = false,"
    " progress_current = 0, progress_total = NULL, progress_message = NULL"
    f" WHERE id = %s AND state IN {FINISHED_STATES_SQL} RETURNING attempt, queue"
)
DELETE = (
    "WITH d AS (DELETE FROM {jobs} WHERE id = ANY(%s) AND state != 'running' RETURNING id),"
    " e AS (DELETE FROM {events} WHERE job_id IN (SELECT id FROM d)),"
    " m AS (DELETE FROM {messages} WHERE job_id IN (SELECT id FROM d))"
    " SELECT id FROM d"
)
PRUNE = (
    "WITH d AS (DELETE FROM {jobs} WHERE state = ANY(%s)"
    " AND finished_at < {now} - %s::float8 RETURNING id),"
    " e AS (DELETE FROM {events} WHERE job_id IN (SELECT id FROM d)),"
    " m AS (DELETE FROM {messages} WHERE job_id IN (SELECT id FROM d))"
    " SELECT count(*) FROM d"
)

# -- processes ---------------------------------------------------------------------------------
HEARTBEAT = (
    f"INSERT INTO {{processes}} ({rules.PROCESS_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, {now}), {now}, NULL, %s, %s, %s,"
    " %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
    " served = excluded.served, failed = excluded.failed,"
    " current_job = excluded.current_job, rss = excluded.rss,"
    " peak_rss = greatest(processes.peak_rss, excluded.peak_rss),"
    " info = excluded.info, stopped_at = NULL"
)
STOP_PROCESSES = "UPDATE {processes} SET stopped_at = {now}, current_job = NULL WHERE id = ANY(%s)"
#: The process rows and the server's now (to judge each row's status).
LIST_PROCESSES = (
    f"SELECT {rules.PROCESS_COLUMNS}, {{now}} FROM {{processes}} ORDER BY started_at, id"
)
PRUNE_PROCESSES = (
    "DELETE FROM {processes} WHERE coalesce(stopped_at, heartbeat_at) < {now} - %s::float8"
)
PUBLISH_TASKS = "UPDATE {processes} SET tasks = %s WHERE id = %s"
#: Process rows not stopped, with the task names each publishes and the server's now.
PROCESS_TASKS = (
    f"SELECT {rules.PROCESS_COLUMNS}, tasks, {{now}} FROM {{processes}} WHERE stopped_at IS NULL"
)
#: Queued and scheduled jobs by task.
WAITING_BY_TASK = "SELECT task, count(*) FROM {jobs} WHERE state = 'queued' GROUP BY task"

# -- locks -------------------------------------------------------------------------------------
TAKE_LOCK = (
    "INSERT INTO {locks} (name, owner, expires_at) VALUES (%s, %s, {now} + %s::float8)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    " expires_at = excluded.expires_at"
    " WHERE locks.owner = excluded.owner OR locks.expires_at < {now}"
    " RETURNING 1"
)
RELEASE_LOCK = "DELETE FROM {locks} WHERE name = %s AND owner = %s"

# -- retention: pruning finished jobs by policy --------------------------------------------------
#: The seconds a finished job's own ``retention`` option keeps it ('Infinity': for ever),
#: -1 when it stores none that can be read (migration 0003's function, and its index).
#: Never NULL: ``= -1`` lets a range of the index come out in ``finished_at`` order,
#: where ``IS NULL`` would not.
RETENTION_KEEP = "{schema}.retention_keep(options, state)"


def _prunable(state: str) -> str:
    """Finished jobs of ``state`` (one of the finished states), written as a literal: the
    planner then knows a generic plan may use the partial index, and that its range is in
    ``finished_at`` order (a bound state, or an ``IN`` list beside it, would not)."""
    if state not in TERMINAL_STATES:
        raise ValueError(f"not a finished state: {state!r}")
    return f"state = '{state}'"


def retention_next(state: str) -> str:
    """The next retention stored on jobs of ``state`` above ``previous``."""
    return (
        f"SELECT {RETENTION_KEEP} FROM {{jobs}} WHERE {_prunable(state)}"
        f" AND {RETENTION_KEEP} > %(previous)s::float8 ORDER BY {RETENTION_KEEP} LIMIT 1"
    )


def _bucket(state: str, stored: bool) -> str:
    """Jobs of ``state`` and one stored retention finished more than ``keep`` seconds ago
    (bound: [stored,] keep)."""
    keep = f"{RETENTION_KEEP} = %(stored)s::float8" if stored else f"{RETENTION_KEEP} = -1"
    return f"{_prunable(state)} AND {keep} AND finished_at < {{now}} - %(keep)s::float8"


def prune_bucket(state: str, stored: bool) -> str:
    """Delete the oldest ``limit`` jobs of a bucket not locked by anyone (a retry in
    flight), with their events and messages; returns the three counts."""
    return (
        "WITH d AS (DELETE FROM {jobs} WHERE id IN (SELECT id FROM {jobs}"
        f" WHERE {_bucket(state, stored)} ORDER BY finished_at LIMIT %(limit)s"
        " FOR UPDATE SKIP LOCKED) RETURNING id),"
        # ANY(ARRAY(...)): an index lookup per job, never a scan of the whole table.
        " e AS (DELETE FROM {events} WHERE job_id = ANY(ARRAY(SELECT id FROM d)) RETURNING 1),"
        " m AS (DELETE FROM {messages} WHERE job_id = ANY(ARRAY(SELECT id FROM d)) RETURNING 1)"
        " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM e), (SELECT count(*) FROM m)"
    )


def count_bucket(state: str, stored: bool) -> str:
    """The jobs of a bucket, and their events and messages."""
    return (
        f"WITH d AS (SELECT id FROM {{jobs}} WHERE {_bucket(state, stored)})"
        " SELECT (SELECT count(*) FROM d),"
        " (SELECT count(*) FROM {events} WHERE job_id = ANY(ARRAY(SELECT id FROM d))),"
        " (SELECT count(*) FROM {messages} WHERE job_id = ANY(ARRAY(SELECT id FROM d)))"
    )


# -- schedules ---------------------------------------------------------------------------------
#: Record the fires not recorded yet (bound: schedules, fire times, job ids); returns the
#: ones recorded. A fire that a concurrent transaction is recording waits for it to
#: commit, then counts as recorded.
INSERT_FIRES = (
    f"INSERT INTO {{schedule_fires}} ({rules.FIRE_COLUMNS})"
    " SELECT schedule, fire_at, job_id, {now}"
    " FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS t(schedule, fire_at, job_id)"
    " ON CONFLICT (schedule, fire_at) DO NOTHING RETURNING schedule, fire_at"
)
#: A recorded fire whose job was an unfinished job holding the same unique key.
SET_FIRE_JOB = "UPDATE {schedule_fires} SET job_id = %s WHERE schedule = %s AND fire_at = %s"
LAST_FIRES = (
    f"SELECT DISTINCT ON (schedule) {rules.FIRE_COLUMNS} FROM {{schedule_fires}}"
    " ORDER BY schedule, fire_at DESC"
)
#: Fires recorded longer ago than an age that a later fire of their schedule supersedes
#: (bound: the age in seconds).
PRUNE_FIRES = (
    "DELETE FROM {schedule_fires} AS f WHERE f.recorded_at < {now} - %s AND EXISTS (SELECT 1"
    " FROM {schedule_fires} AS later WHERE later.schedule = f.schedule"
    " AND later.fire_at > f.fire_at)"
)
