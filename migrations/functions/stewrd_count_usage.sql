-- Trigger on runs: every change of a run's token counts (each committed model
-- call, agent steps included) and its arrival at a final status is counted in
-- `usage_daily`, in the transaction that makes it: whichever statement wrote
-- it, usage cannot drift from the runs' own. Each change adds to one of 64
-- shard rows chosen by the connection, so concurrent commits seldom wait on
-- the same row; readers sum the shards.
CREATE OR REPLACE FUNCTION stewrd_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    finished integer := CASE WHEN NEW.status IN ('succeeded', 'failed', 'cancelled')
                                  AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
                             THEN 1 ELSE 0 END;
    cost float8 := CASE WHEN NEW.cost_usd IS DISTINCT FROM OLD.cost_usd
                        THEN coalesce(NEW.cost_usd, 0) - coalesce(OLD.cost_usd, 0) END;
BEGIN
    INSERT INTO usage_daily AS u (project_id, day, model, key_source, shard, runs,
                                  prompt_tokens, completion_tokens, total_tokens, cost_usd)
    VALUES (NEW.project_id, (now() AT TIME ZONE 'UTC')::date, NEW.model, NEW.key_source,
            (pg_backend_pid() & 63)::smallint, finished,
            coalesce(NEW.prompt_tokens, 0) - coalesce(OLD.prompt_tokens, 0),
            coalesce(NEW.completion_tokens, 0) - coalesce(OLD.completion_tokens, 0),
            coalesce(NEW.total_tokens, 0) - coalesce(OLD.total_tokens, 0),
            cost)
    ON CONFLICT (project_id, day, model, key_source, shard) DO UPDATE SET
        runs = u.runs + EXCLUDED.runs,
        prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens,
        total_tokens = u.total_tokens + EXCLUDED.total_tokens,
        cost_usd = CASE WHEN EXCLUDED.cost_usd IS NULL THEN u.cost_usd
                        ELSE coalesce(u.cost_usd, 0) + EXCLUDED.cost_usd END;
    RETURN NULL;
END $$;
