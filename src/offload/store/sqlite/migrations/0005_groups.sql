-- offload schema version 5 (SQLite): groups of jobs, their counters and completion, and
-- stages (a group whose members wait until the group before it is complete).
--
-- Completion is decided by a trigger on the group's row, in the transaction of whatever
-- statement makes a member final (an outcome, a lease rescue, a cancel, a delete, a
-- retry) and counts it, so no path can leave a group that is done but not complete, and
-- none can store its callback twice.
-- The connection runs with recursive_triggers on: completing a group starts the stages
-- after it, which may complete them in turn. A job outside any group costs nothing.
--
-- A member counts in `succeeded`, or in `failed` for any other final state. `total`
-- counts members stored (added ones too; a member deleted before it finished leaves).
-- A group is complete when started (its previous stage, if any, is complete), sealed
-- (or stopped by a failed previous stage) and every member is final.
CREATE TABLE IF NOT EXISTS offload_groups (
    id                    TEXT PRIMARY KEY,
    name                  TEXT,
    created_at            REAL NOT NULL,
    sealed                INTEGER NOT NULL DEFAULT 0,
    started               INTEGER NOT NULL DEFAULT 1,
    stopped               INTEGER NOT NULL DEFAULT 0,
    after_id              TEXT,
    stop_on_failure       INTEGER NOT NULL DEFAULT 0,
    total                 INTEGER NOT NULL DEFAULT 0,
    succeeded             INTEGER NOT NULL DEFAULT 0,
    failed                INTEGER NOT NULL DEFAULT 0,
    completed_at          REAL,
    callback_id           TEXT,
    callback_task         TEXT,
    callback_queue        TEXT,
    callback_priority     INTEGER,
    callback_max_attempts INTEGER,
    callback_timeout      REAL,
    callback_options      TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS offload_groups_after
    ON offload_groups (after_id) WHERE after_id IS NOT NULL;
-- Groups not complete: a write of outcomes asks first whether there is any, and looks
-- up the groups of its jobs only then.
CREATE INDEX IF NOT EXISTS offload_groups_open
    ON offload_groups (id) WHERE completed_at IS NULL;

ALTER TABLE offload_jobs ADD COLUMN group_id TEXT;
-- Members by group. Not by state as well: a member's claim and outcome then write no
-- entry of this index (its columns do not change), which keeps a member's cost close to
-- a plain job's.
CREATE INDEX IF NOT EXISTS offload_jobs_group
    ON offload_jobs (group_id) WHERE group_id IS NOT NULL;

-- A member that becomes final, final no more (a retry by hand) or is deleted before it
-- finished is counted by the statement that moves it (store/sqlite/jobs.count_member),
-- in the same transaction: a trigger on offload_jobs would cost every job's claim and
-- outcome, group or not, since SQLite runs a trigger program for each row written.

-- Complete: store the callback, then start (or stop) the stages after this group.
CREATE TRIGGER IF NOT EXISTS offload_group_complete
AFTER UPDATE ON offload_groups
WHEN NEW.completed_at IS NULL AND NEW.started = 1 AND (NEW.sealed = 1 OR NEW.stopped = 1)
    AND NEW.succeeded + NEW.failed >= NEW.total
BEGIN
    UPDATE offload_groups SET completed_at = (julianday('now') - 2440587.5) * 86400.0
    WHERE id = NEW.id AND completed_at IS NULL;
    INSERT INTO offload_jobs (id, task, queue, state, priority, args, kwargs, max_attempts,
                              created_at, run_at, timeout, options)
    SELECT NEW.callback_id, NEW.callback_task, NEW.callback_queue, 'queued',
           NEW.callback_priority, '[]',
           json_object('group_id', NEW.id, 'succeeded', NEW.succeeded, 'failed', NEW.failed),
           NEW.callback_max_attempts, (julianday('now') - 2440587.5) * 86400.0,
           (julianday('now') - 2440587.5) * 86400.0, NEW.callback_timeout,
           NEW.callback_options
    WHERE NEW.callback_task IS NOT NULL
    ON CONFLICT (id) DO NOTHING;
    INSERT INTO offload_events (job_id, at, attempt, kind, worker_id, message)
    SELECT j.id, (julianday('now') - 2440587.5) * 86400.0, j.attempt, 'cancelled', NULL,
           'not run: the previous stage (group ' || NEW.id || ') ended with '
           || NEW.failed || ' failed member(s)'
    FROM offload_jobs j
    WHERE NEW.stop_on_failure = 1 AND NEW.failed > 0 AND j.state = 'waiting'
        AND j.group_id IN (SELECT id FROM offload_groups WHERE after_id = NEW.id);
    -- The stages after it start, or stop: a stopped stage counts its waiting members as
    -- failed (they are cancelled just below), which may complete it in turn.
    UPDATE offload_groups SET started = 1,
        stopped = CASE WHEN NEW.stop_on_failure = 1 AND NEW.failed > 0 THEN 1 ELSE 0 END,
        failed = failed + CASE WHEN NEW.stop_on_failure = 1 AND NEW.failed > 0
            THEN (SELECT count(*) FROM offload_jobs j
                  WHERE j.group_id = offload_groups.id AND j.state = 'waiting')
            ELSE 0 END
    WHERE after_id = NEW.id AND completed_at IS NULL;
    UPDATE offload_jobs SET
        state = CASE WHEN NEW.stop_on_failure = 1 AND NEW.failed > 0
                     THEN 'cancelled' ELSE 'queued' END,
        finished_at = CASE WHEN NEW.stop_on_failure = 1 AND NEW.failed > 0
                           THEN (julianday('now') - 2440587.5) * 86400.0 END
    WHERE state = 'waiting'
        AND group_id IN (SELECT id FROM offload_groups WHERE after_id = NEW.id);
END;
