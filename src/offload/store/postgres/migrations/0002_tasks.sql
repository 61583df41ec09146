-- offload schema version 2 (PostgreSQL): the task names each worker registers.
-- Leases and heartbeats need nothing new here: every time is the server's clock.

-- tasks: the task names a worker or drain registers, as a JSON array of strings.
ALTER TABLE processes ADD COLUMN tasks text NOT NULL DEFAULT '[]';
