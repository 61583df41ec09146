-- offload schema version 5 (PostgreSQL): groups of jobs, their counters and completion,
-- and stages (a group whose members wait until the group before it is complete).
--
-- Completion is decided by triggers, in the transaction of whatever statement makes a
-- member final (an outcome, a lease rescue, a cancel, a delete, a retry), so no path can
-- leave a group that is done but not complete, and none can store its callback twice.
-- Completing a group starts the stages after it, which may complete them in turn. Every
-- trigger's WHEN names group_id, so a job outside any group costs one test of a NULL
-- column and no function call. The functions run with this schema as their search_path.
--
-- A member counts in `succeeded`, or in `failed` for any other final state. `total`
-- counts members stored (added ones too; a member deleted before it finished leaves).
-- A group is complete when started (its previous stage, if any, is complete), sealed
-- (or stopped by a failed previous stage) and every member is final.
CREATE TABLE groups (
    id                    text COLLATE "C" PRIMARY KEY,
    name                  text,
    created_at            double precision NOT NULL,
    sealed                boolean NOT NULL DEFAULT false,
    started               boolean NOT NULL DEFAULT true,
    stopped               boolean NOT NULL DEFAULT false,
    after_id              text COLLATE "C",
    stop_on_failure       boolean NOT NULL DEFAULT false,
    total                 integer NOT NULL DEFAULT 0,
    succeeded             integer NOT NULL DEFAULT 0,
    failed                integer NOT NULL DEFAULT 0,
    completed_at          double precision,
    callback_id           text COLLATE "C",
    callback_task         text,
    callback_queue        text,
    callback_priority     integer,
    callback_max_attempts integer,
    callback_timeout      double precision,
    callback_options      text
);
CREATE INDEX groups_after ON groups (after_id) WHERE after_id IS NOT NULL;

ALTER TABLE jobs ADD COLUMN group_id text COLLATE "C";
CREATE INDEX jobs_group ON jobs (group_id) WHERE group_id IS NOT NULL;
-- Members of a stage that has not started wait in the state 'waiting'.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN (
    'waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'quarantined'));

-- A member became final, or final no more (a retry by hand): count it, while the group
-- is not complete. A member deleted before it finished is no member any more.
CREATE FUNCTION group_member_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    final constant text[] := ARRAY['cancelled', 'failed', 'quarantined', 'succeeded'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE groups SET total = total - 1
        WHERE id = OLD.group_id AND completed_at IS NULL;
        RETURN NULL;
    END IF;
    UPDATE groups SET
        succeeded = succeeded + CASE WHEN NEW.state = 'succeeded' THEN 1
                                     WHEN OLD.state = 'succeeded' THEN -1 ELSE 0 END,
        failed = failed + CASE
            WHEN NEW.state IN ('cancelled', 'failed', 'quarantined') THEN 1
            WHEN OLD.state IN ('cancelled', 'failed', 'quarantined') THEN -1 ELSE 0 END
    WHERE id = NEW.group_id AND completed_at IS NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER member_state AFTER UPDATE OF state ON jobs FOR EACH ROW
WHEN (NEW.group_id IS NOT NULL
      AND (OLD.state IN ('cancelled', 'failed', 'quarantined', 'succeeded'))
          <> (NEW.state IN ('cancelled', 'failed', 'quarantined', 'succeeded')))
EXECUTE FUNCTION group_member_changed();

CREATE TRIGGER member_delete AFTER DELETE ON jobs FOR EACH ROW
WHEN (OLD.group_id IS NOT NULL
      AND OLD.state NOT IN ('cancelled', 'failed', 'quarantined', 'succeeded'))
EXECUTE FUNCTION group_member_changed();

-- Complete: store the callback, then start (or stop) the stages after this group.
CREATE FUNCTION group_completed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    at constant double precision := date_part('epoch', now());
    stop constant boolean := NEW.stop_on_failure AND NEW.failed > 0;
    channel constant text := 'offload_' || TG_TABLE_SCHEMA;
BEGIN
    UPDATE groups SET completed_at = at WHERE id = NEW.id AND completed_at IS NULL;
    IF NEW.callback_task IS NOT NULL THEN
        INSERT INTO jobs (id, task, queue, state, priority, args, kwargs, max_attempts,
                          created_at, run_at, timeout, options)
        VALUES (NEW.callback_id, NEW.callback_task, NEW.callback_queue, 'queued',
                NEW.callback_priority, '[]',
                json_build_object('group_id', NEW.id, 'succeeded', NEW.succeeded,
                                  'failed', NEW.failed)::text,
                NEW.callback_max_attempts, at, at, NEW.callback_timeout, NEW.callback_options)
        ON CONFLICT (id) DO NOTHING;
        PERFORM pg_notify(channel, NEW.callback_queue);
    END IF;
    IF stop THEN
        INSERT INTO events (job_id, at, attempt, kind, worker_id, message)
        SELECT j.id, at, j.attempt, 'cancelled', NULL,
               'not run: the previous stage (group ' || NEW.id || ') ended with '
               || NEW.failed || ' failed member(s)'
        FROM jobs j
        WHERE j.state = 'waiting'
            AND j.group_id IN (SELECT g.id FROM groups g WHERE g.after_id = NEW.id)
        ORDER BY j.id;
    END IF;
    UPDATE jobs SET
        state = CASE WHEN stop THEN 'cancelled' ELSE 'queued' END,
        finished_at = CASE WHEN stop THEN at END
    WHERE state = 'waiting'
        AND group_id IN (SELECT g.id FROM groups g WHERE g.after_id = NEW.id);
    IF FOUND AND NOT stop THEN
        PERFORM pg_notify(channel, '');
    END IF;
    UPDATE groups SET started = true, stopped = stop
    WHERE after_id = NEW.id AND completed_at IS NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER group_complete AFTER UPDATE ON groups FOR EACH ROW
WHEN (NEW.completed_at IS NULL AND NEW.started AND (NEW.sealed OR NEW.stopped)
      AND NEW.succeeded + NEW.failed >= NEW.total)
EXECUTE FUNCTION group_completed();
