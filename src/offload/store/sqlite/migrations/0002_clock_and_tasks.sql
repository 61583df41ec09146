-- offload schema version 2 (SQLite): leases and heartbeats judged by the host's monotonic
-- clock, and the task names each worker registers.
--
-- lease_boot and lease_mono: the boot id of the host and the CLOCK_MONOTONIC moment at
-- which a running job's lease ends, written with leased_until by every claim and renewal.
-- A rescuer of the same boot compares lease_mono with its own monotonic clock, so a step
-- of the wall clock neither expires a healthy lease nor delays the rescue of a dead one.
ALTER TABLE offload_jobs ADD COLUMN lease_boot TEXT;
ALTER TABLE offload_jobs ADD COLUMN lease_mono REAL;

-- boot_id and beat_mono: the host's boot id and the writer's CLOCK_MONOTONIC reading at
-- the row's last heartbeat (whether a process is gone, on the same clock).
ALTER TABLE offload_processes ADD COLUMN boot_id TEXT;
ALTER TABLE offload_processes ADD COLUMN beat_mono REAL;

-- tasks: the task names a worker or drain registers, as a JSON array of strings.
ALTER TABLE offload_processes ADD COLUMN tasks TEXT NOT NULL DEFAULT '[]';
