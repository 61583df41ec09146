-- offload schema version 7 (PostgreSQL): jobs counted by queue and state.
--
-- So that counting jobs (job_counts: /metrics, the dashboard, `offload jobs counts`) reads
-- a few rows instead of the whole jobs table, the count of each (queue, stored state) is
-- kept, but for queued jobs (counted from the claim index, with the scheduled ones).
--
-- Every statement that writes jobs has its changes counted by the statement triggers
-- below, in its own transaction, hand-written SQL included. A trigger does not update a
-- shared row (every worker on every machine would wait on the others for it): it appends
-- the statement's net change per (queue, state) to count_changes, which takes no row
-- lock. A count is its row in counts plus its rows in count_changes, read in one
-- snapshot. Now and then (about one statement in 50, by chance) a trigger folds
-- count_changes into counts, under a transaction-scoped advisory lock it only tries for,
-- so it never waits: a writer that finds another folding goes on without.
-- PostgresStore.job_recount() rebuilds both tables from the jobs.

-- No writer may change jobs between the fill below and the triggers taking over.
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE counts (
    queue text NOT NULL,
    state text NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state)
);

CREATE TABLE count_changes (
    queue text NOT NULL,
    state text NOT NULL,
    n     bigint NOT NULL
);

INSERT INTO counts (queue, state, n)
SELECT queue, state, count(*) FROM jobs WHERE state <> 'queued' GROUP BY queue, state;

-- Move count_changes into counts, if no other transaction is doing so (wait: wait for
-- it instead). True when folded. The lock is held to commit, so folds never interleave.
CREATE FUNCTION counts_fold(wait boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(1868983408, hashtext(current_schema()));
    ELSIF NOT pg_try_advisory_xact_lock(1868983408, hashtext(current_schema())) THEN
        RETURN false;
    END IF;
    WITH moved AS (DELETE FROM count_changes RETURNING queue, state, n)
    INSERT INTO counts AS c (queue, state, n)
    SELECT queue, state, sum(n) FROM moved GROUP BY queue, state
    ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
    RETURN true;
END $$;

-- One statement's changes: rows it took out of a state count -1, rows it put in +1.
-- 0.02: a fold about every 50 statements that change counts. Only a read committed
-- transaction folds: in a stricter one (an enqueue on the caller's own transaction), the
-- rows a fold deletes could have been folded since its snapshot, a serialization error.
CREATE FUNCTION count_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT FROM new_rows WHERE state <> 'queued') THEN
            RETURN NULL;  -- the usual enqueue: queued jobs only, nothing to count
        END IF;
        INSERT INTO count_changes (queue, state, n)
        SELECT queue, state, count(*) FROM new_rows WHERE state <> 'queued'
        GROUP BY queue, state;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO count_changes (queue, state, n)
        SELECT queue, state, sum(n) FROM (
            SELECT queue, state, -1 AS n FROM old_rows WHERE state <> 'queued'
            UNION ALL
            SELECT queue, state, 1 FROM new_rows WHERE state <> 'queued'
        ) moved
        GROUP BY queue, state HAVING sum(n) <> 0;
    ELSE
        INSERT INTO count_changes (queue, state, n)
        SELECT queue, state, -count(*) FROM old_rows WHERE state <> 'queued'
        GROUP BY queue, state;
    END IF;
    IF FOUND AND random() < 0.02
            AND current_setting('transaction_isolation') = 'read committed' THEN
        PERFORM counts_fold(false);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER count_inserted AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION count_changed();
CREATE TRIGGER count_updated AFTER UPDATE ON jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION count_changed();
CREATE TRIGGER count_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION count_changed();

-- TRUNCATE has no transition table: it empties the counts with the jobs.
CREATE FUNCTION counts_truncated() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1868983408, hashtext(current_schema()));
    DELETE FROM counts;
    DELETE FROM count_changes;
    RETURN NULL;
END $$;

CREATE TRIGGER count_truncated AFTER TRUNCATE ON jobs
FOR EACH STATEMENT EXECUTE FUNCTION counts_truncated();
