"""The PostgreSQL store's SQL for groups (see ``queries.py`` for how statements are
written and filled in). Counters and completion are triggers of migration 0005."""

from __future__ import annotations

from offload.store import group_rules

GROUP_COLUMNS = group_rules.GROUP_COLUMNS
INSERT_GROUP = (
    "INSERT INTO {groups} (id, name, created_at, started, after_id, stop_on_failure,"
    " callback_id, callback_task, callback_queue, callback_priority, callback_max_attempts,"
    " callback_timeout, callback_options) VALUES (%(id)s, %(name)s, {now}, %(started)s,"
    " %(after)s, %(stop_on_failure)s, %(callback_id)s, %(task)s, %(queue)s, %(priority)s,"
    " %(max_attempts)s, %(timeout)s, %(options)s)"
)
#: Whether the group named as ``after`` is complete, and stops the stages after it; its
#: row locked, so it cannot complete between this read and the insert.
GROUP_PREVIOUS = (
    "SELECT completed_at IS NOT NULL, stop_on_failure AND failed > 0"
    " FROM {groups} WHERE id = %s FOR UPDATE"
)
STOP_GROUP = "UPDATE {groups} SET stopped = true WHERE id = %s"
GET_GROUP = f"SELECT {GROUP_COLUMNS} FROM {{groups}} WHERE id = %s"
#: The group, locked: an add or a seal waits for a write that is completing it.
LOCK_GROUP = f"SELECT {GROUP_COLUMNS} FROM {{groups}} WHERE id = %s FOR UPDATE"
LIST_GROUPS = f"SELECT {GROUP_COLUMNS} FROM {{groups}} ORDER BY id DESC LIMIT %s"
LIST_GROUPS_BEFORE = (
    f"SELECT {GROUP_COLUMNS} FROM {{groups}} WHERE id < %s ORDER BY id DESC LIMIT %s"
)
#: Members (bound: one array per column of ``t``, then their state and group); an id
#: already stored is skipped (a retried member adding the same members). Returns the
#: ids inserted.
INSERT_MEMBERS = (
    "INSERT INTO {jobs} (id, task, queue, state, priority, args, kwargs, max_attempts,"
    " created_at, run_at, timeout, options, group_id, limit_key, limit_max)"
    " SELECT t.id, t.task, t.queue, %s, t.priority, t.args, t.kwargs, t.max_attempts, {now},"
    " coalesce(t.run_at, {now} + t.delay), t.timeout, t.options, %s, t.limit_key, t.limit_max"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[],"
    " %s::int[], %s::float8[], %s::float8[], %s::float8[], %s::text[], %s::text[], %s::int[])"
    " AS t(id, task, queue, priority, args, kwargs, max_attempts, run_at, delay, timeout,"
    " options, limit_key, limit_max) ON CONFLICT (id) DO NOTHING RETURNING id"
)
GROW_GROUP = "UPDATE {groups} SET total = total + %s WHERE id = %s"
SEAL_GROUP = "UPDATE {groups} SET sealed = true WHERE id = %s AND NOT sealed"
GROUP_OF_JOB = "SELECT group_id FROM {jobs} WHERE id = %s"
