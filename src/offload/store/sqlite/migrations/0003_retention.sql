-- offload schema version 3 (SQLite): pruning finished jobs past their retention.
--
-- offload_jobs_retention: finished jobs by state, by the retention their task stored in
-- options ({"retention": {"<state>": seconds or null}}), oldest first. The expression is
-- the seconds a job keeps (9e999 for ever), NULL when it stores none that can be read
-- (anything but null or 0 to 3162240000 seconds, about 100 years: then the settings'
-- retention applies). It must stay exactly queries.RETENTION_KEEP:
-- the planner uses the index only for that text. A prune walks one range of this index
-- per state and stored retention, so kept jobs are never scanned.
CREATE INDEX IF NOT EXISTS offload_jobs_retention ON offload_jobs (
    state,
    (CASE WHEN typeof(options) = 'text' AND instr(options, '"retention"') > 0
          AND json_valid(options) THEN CASE
        WHEN json_type(options, '$.retention.' || state) IN ('integer', 'real')
             AND json_extract(options, '$.retention.' || state) BETWEEN 0 AND 3162240000
        THEN json_extract(options, '$.retention.' || state)
        WHEN json_type(options, '$.retention.' || state) = 'null' THEN 9e999 END END),
    finished_at
) WHERE state IN ('cancelled', 'failed', 'quarantined', 'succeeded');
