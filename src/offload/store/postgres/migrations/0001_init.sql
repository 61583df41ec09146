-- offload schema version 1 (PostgreSQL).
-- Applied inside one transaction with search_path set to offload's schema (default
-- "offload"), so the names below are created there. Times are float seconds since the
-- epoch, always taken from the database server's clock. JSON payloads are stored as text
-- exactly as the client encoded them.

CREATE TABLE jobs (
    id               text COLLATE "C" PRIMARY KEY,
    task             text NOT NULL,
    queue            text NOT NULL,
    state            text NOT NULL CHECK (state IN (
                         'queued', 'running', 'succeeded', 'failed', 'cancelled', 'quarantined')),
    priority         integer NOT NULL DEFAULT 0,
    args             text NOT NULL,
    kwargs           text NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 1,
    errors           integer NOT NULL DEFAULT 0,
    crashes          integer NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    run_at           double precision NOT NULL,
    started_at       double precision,
    finished_at      double precision,
    leased_until     double precision,
    worker_id        text,
    timeout          double precision,
    options          text NOT NULL DEFAULT '{}',
    unique_key       text,
    progress_current double precision NOT NULL DEFAULT 0,
    progress_total   double precision,
    progress_message text,
    result           text,
    error            text,
    saved            text NOT NULL DEFAULT '{}',
    cancel_requested boolean NOT NULL DEFAULT false
);

-- The claim walks only queued rows of one queue, in claim order.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (leased_until) WHERE state = 'running';
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- At most one unfinished job per unique key (the arbiter of enqueue's ON CONFLICT).
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');

CREATE TABLE events (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id    text COLLATE "C" NOT NULL,
    at        double precision NOT NULL,
    attempt   integer NOT NULL,
    kind      text NOT NULL,
    worker_id text,
    message   text NOT NULL DEFAULT ''
);
CREATE INDEX events_job ON events (job_id, seq);

CREATE TABLE messages (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  text COLLATE "C" NOT NULL,
    at      double precision NOT NULL,
    attempt integer NOT NULL,
    text    text NOT NULL
);
CREATE INDEX messages_job ON messages (job_id, seq);

CREATE TABLE processes (
    id           text COLLATE "C" PRIMARY KEY,
    kind         text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    parent_id    text,
    queues       text NOT NULL DEFAULT '',
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL,
    stopped_at   double precision,
    served       bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    current_job  text,
    rss          bigint NOT NULL DEFAULT 0,
    peak_rss     bigint NOT NULL DEFAULT 0,
    info         text NOT NULL DEFAULT '{}'
);

CREATE TABLE locks (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at double precision NOT NULL
);
