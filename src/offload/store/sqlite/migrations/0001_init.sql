-- offload schema version 1 (SQLite). Times are float seconds since the epoch.
CREATE TABLE IF NOT EXISTS offload_jobs (
    id               TEXT PRIMARY KEY,
    task             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    args             TEXT NOT NULL,
    kwargs           TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 1,
    errors           INTEGER NOT NULL DEFAULT 0,
    crashes          INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    run_at           REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    leased_until     REAL,
    worker_id        TEXT,
    timeout          REAL,
    options          TEXT NOT NULL DEFAULT '{}',
    unique_key       TEXT,
    progress_current REAL NOT NULL DEFAULT 0,
    progress_total   REAL,
    progress_message TEXT,
    result           TEXT,
    error            TEXT,
    saved            TEXT NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- The claim scans only queued rows, in claim order.
CREATE INDEX IF NOT EXISTS offload_jobs_claim
    ON offload_jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS offload_jobs_lease
    ON offload_jobs (leased_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS offload_jobs_state ON offload_jobs (state, id);
CREATE UNIQUE INDEX IF NOT EXISTS offload_jobs_unique
    ON offload_jobs (unique_key) WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');

CREATE TABLE IF NOT EXISTS offload_events (
    seq       INTEGER PRIMARY KEY,
    job_id    TEXT NOT NULL,
    at        REAL NOT NULL,
    attempt   INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    worker_id TEXT,
    message   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS offload_events_job ON offload_events (job_id, seq);

CREATE TABLE IF NOT EXISTS offload_messages (
    seq     INTEGER PRIMARY KEY,
    job_id  TEXT NOT NULL,
    at      REAL NOT NULL,
    attempt INTEGER NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS offload_messages_job ON offload_messages (job_id, seq);

CREATE TABLE IF NOT EXISTS offload_processes (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    parent_id    TEXT,
    queues       TEXT NOT NULL DEFAULT '',
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at   REAL,
    served       INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    current_job  TEXT,
    rss          INTEGER NOT NULL DEFAULT 0,
    peak_rss     INTEGER NOT NULL DEFAULT 0,
    info         TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS offload_locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
);
