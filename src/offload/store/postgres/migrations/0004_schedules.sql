-- offload schema version 4 (PostgreSQL): the fire records of periodic schedules.
--
-- One row per fire of a schedule: its name and fire time (whole seconds since the epoch,
-- the same integer on every machine that steps the schedule), the job it became, and when
-- it was recorded (the server's clock). The primary key is what makes each fire one job
-- across every scheduler on every machine: the record and its job are inserted in one
-- transaction, and a fire already recorded (or being recorded by a transaction not yet
-- committed, which the insert waits for) inserts neither. Schedules themselves are
-- defined in code, not stored.
CREATE TABLE schedule_fires (
    schedule    text COLLATE "C" NOT NULL,
    fire_at     bigint NOT NULL,
    job_id      text COLLATE "C" NOT NULL,
    recorded_at double precision NOT NULL,
    PRIMARY KEY (schedule, fire_at)
);
