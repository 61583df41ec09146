-- offload schema version 6 (SQLite): unique windows, debounce and per-key limits.
--
-- A job may run under a concurrency limit: at most limit_max jobs with its limit_key
-- run at once. offload_jobs_limit counts what runs under each key; a claim asks
-- offload_jobs_limited whether any limited job waits at all, and takes the usual path
-- when none does.
ALTER TABLE offload_jobs ADD COLUMN limit_key TEXT;
ALTER TABLE offload_jobs ADD COLUMN limit_max INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS offload_jobs_limit
    ON offload_jobs (limit_key) WHERE state = 'running' AND limit_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS offload_jobs_limited
    ON offload_jobs (limit_key) WHERE state = 'queued' AND limit_key IS NOT NULL;

-- The last job stored with a windowed unique key (until: the end of its window) or a
-- debounce key (until NULL). Rows past their use are pruned with finished jobs.
CREATE TABLE IF NOT EXISTS offload_keys (
    key    TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    until  REAL
) WITHOUT ROWID;
