-- offload schema version 3 (PostgreSQL): pruning finished jobs past their retention.

-- retention_keep(options, state): the seconds a finished job keeps in ``state`` by the
-- retention its task stored in options ({"retention": {"<state>": seconds or null}}):
-- 'Infinity' for null (for ever), -1 when it stores none that can be read (text that
-- is not JSON, a value that is not a number of seconds from 0 to 3162240000, about 100
-- years): the settings' retention then applies. Never NULL, so that the index's range
-- for -1 comes out in finished_at order. Jobs without the word in their options never
-- reach the parser.
CREATE FUNCTION retention_keep(options text, state text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    value jsonb;
    seconds double precision;
BEGIN
    IF options IS NULL OR strpos(options, '"retention"') = 0 THEN
        RETURN -1;
    END IF;
    BEGIN
        value := options::jsonb -> 'retention' -> state;
        IF value IS NULL THEN
            RETURN -1;
        ELSIF jsonb_typeof(value) = 'null' THEN
            RETURN 'Infinity';
        ELSIF jsonb_typeof(value) <> 'number' THEN
            RETURN -1;
        END IF;
        seconds := value::double precision;
    EXCEPTION WHEN others THEN
        RETURN -1;  -- not JSON, or a number past float8
    END;
    IF seconds BETWEEN 0 AND 3162240000 THEN
        RETURN seconds;
    END IF;
    RETURN -1;
END
$$;

-- Finished jobs by state, by the retention they store, oldest first: a prune walks one
-- range per state and stored retention, so kept jobs are never scanned.
CREATE INDEX jobs_retention ON jobs (state, retention_keep(options, state), finished_at)
    WHERE state IN ('cancelled', 'failed', 'quarantined', 'succeeded');
