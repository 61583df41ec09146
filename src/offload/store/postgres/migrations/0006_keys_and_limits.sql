-- offload schema version 6 (PostgreSQL): unique windows, debounce and per-key limits.
--
-- A job may run under a concurrency limit: at most limit_max jobs with its limit_key
-- run at once. jobs_limit counts what runs under each key (a claim that meets limited
-- jobs counts them under an advisory lock per key, see runs.py).
ALTER TABLE jobs ADD COLUMN limit_key text;
ALTER TABLE jobs ADD COLUMN limit_max integer NOT NULL DEFAULT 0;
CREATE INDEX jobs_limit ON jobs (limit_key) WHERE state = 'running' AND limit_key IS NOT NULL;

-- The last job stored with a windowed unique key (until: the end of its window) or a
-- debounce key (until NULL); its row lock serialises enqueues of one key. Rows past
-- their use are pruned with finished jobs.
CREATE TABLE keys (
    key    text PRIMARY KEY,
    job_id text NOT NULL,
    until  double precision
);
