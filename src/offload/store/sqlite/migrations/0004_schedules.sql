-- offload schema version 4 (SQLite): the fire records of periodic schedules.
--
-- One row per fire of a schedule: its name and fire time (whole seconds since the epoch,
-- the same integer on every machine that steps the schedule), the job it became, and when
-- it was recorded. The primary key is what makes each fire one job across every
-- scheduler: the record and its job are inserted in one transaction, and a fire already
-- recorded inserts neither. Schedules themselves are defined in code, not stored.
CREATE TABLE IF NOT EXISTS offload_schedule_fires (
    schedule    TEXT NOT NULL,
    fire_at     INTEGER NOT NULL,
    job_id      TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (schedule, fire_at)
) WITHOUT ROWID;
