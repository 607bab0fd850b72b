-- Claims for a room message (see migration 0018): under the project's lock,
-- the project's oldest due run if it has a free place. A claim that takes one
-- makes the mark due again (there may be more room: the next room message
-- finds out); a claim that finds no room or no due run deletes the mark,
-- unless a place freed meanwhile gave it a new generation.
--
-- Fairness needs nothing more here: a capped project holds at most its cap,
-- and a room message only ever fills a place its own project freed.
-- Sequential scans off: see `stewrd_claim_batch`.
CREATE OR REPLACE FUNCTION stewrd_claim_room(p_worker uuid, p_lease float8, p_project uuid)
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 SET enable_seqscan = off AS $$
DECLARE
    mark bigint;
    cap integer;
    running_now bigint;
    picked uuid;
    claimed runs;
BEGIN
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'cannot claim runs on a read-only server'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    PERFORM pg_advisory_xact_lock(1937006964, hashtext(p_project::text));
    SELECT generation INTO mark FROM free_places WHERE project_id = p_project;
    IF NOT FOUND THEN
        RETURN; -- another room message saw to it
    END IF;
    SELECT max_concurrent_runs INTO cap FROM projects WHERE id = p_project;
    SELECT count(*) INTO running_now FROM runs
    WHERE project_id = p_project AND status = 'running';
    IF cap IS NULL OR running_now < cap THEN
        SELECT id INTO picked FROM runs
        WHERE project_id = p_project AND status = 'queued' AND due_at <= now()
        ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
    IF picked IS NULL THEN
        DELETE FROM free_places WHERE project_id = p_project AND generation = mark;
        RETURN;
    END IF;
    UPDATE runs SET status = 'running', attempts = attempts + 1, lease_owner = p_worker,
                    lease_until = now() + make_interval(secs => p_lease),
                    started_at = coalesce(started_at, now())
    WHERE id = picked
    RETURNING * INTO claimed;
    DELETE FROM outbox WHERE run_id = picked;
    UPDATE free_places SET available_at = now(), publishes = 0 WHERE project_id = p_project;
    RETURN NEXT claimed;
END $$;
