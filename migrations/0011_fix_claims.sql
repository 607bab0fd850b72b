-- Two fixes to the claim, found by the tests of issue 18 and a CI flake.
--
-- 1. A claim on a read-only server (a demoted primary, a standby) refuses with
-- SQLSTATE 25006 before anything else. It used to read there: a run committed
-- on the new primary was not found, the message counted as a spare and was
-- acked, and the run waited for its outbox row's republish. Refusing makes the
-- worker drop its connections to that server and claim again on the writable
-- one (the pool treats 25006 as "reconnect").
--
-- 2. A place freed in a capped project could stay empty for the relay's 5 s
-- republish: two runs finishing together both ran `free_place`, and when the
-- relay had published the first pick and pushed its outbox row's time back
-- before the second looked, the second picked the same run again. One run got
-- two messages and the other none; the spare message claimed nothing (seen in
-- CI: a budget test's second pair started one place short). Now a capped
-- project's spare message claims whatever the claim would give a message with
-- no run: the cap is counted under the project's lock as before, so this can
-- only fill a place, never exceed it. Uncapped projects' spares still claim
-- nothing, which keeps duplicate messages from fighting over the queue's head.
CREATE OR REPLACE FUNCTION stewrd_claim_next(p_worker uuid, p_lease float8, p_hint uuid)
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 AS $$
DECLARE
    hint_project uuid;
    hint_status text;
    hint_capped boolean;
    waiting uuid[];
    candidate record;
    running_now bigint;
    picked uuid;
    claimed runs;
BEGIN
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'cannot claim runs on a read-only server'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    -- Runs are looked up by id alone, and their status checked here: a
    -- `status = 'queued'` beside `id =` lets the planner use the partial index
    -- of queued runs, which a plan cached while the queue was short keeps using
    -- once it holds thousands (measured: 4,500 buffers a claim instead of 30).
    IF p_hint IS NOT NULL THEN
        SELECT r.project_id, r.status, p.max_concurrent_runs IS NOT NULL
        INTO hint_project, hint_status, hint_capped
        FROM runs r LEFT JOIN projects p ON p.id = r.project_id WHERE r.id = p_hint;
        IF hint_status IS DISTINCT FROM 'queued' THEN
            IF NOT coalesce(hint_capped, false) THEN
                RETURN; -- a spare message
            END IF;
            -- A capped project's spare is what woke a freed place: two places
            -- freed together can wake the same run (the relay pushes a
            -- published row's time back, so the second `free_place` sees it
            -- waiting again). It claims as a message without a run would.
            p_hint := NULL;
            hint_project := NULL;
        END IF;
    END IF;
    WITH RECURSIVE ready(project_id) AS (
        (SELECT project_id FROM runs WHERE status = 'queued' ORDER BY project_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.project_id FROM runs r
                WHERE r.status = 'queued' AND r.project_id > ready.project_id
                ORDER BY r.project_id LIMIT 1)
        FROM ready WHERE ready.project_id IS NOT NULL
    )
    SELECT array_agg(project_id) INTO waiting FROM ready WHERE project_id IS NOT NULL;
    IF waiting IS NULL THEN
        RETURN;
    END IF;
    FOR candidate IN
        SELECT w.project_id, p.max_concurrent_runs,
               CASE WHEN cardinality(waiting) > 1 OR p.max_concurrent_runs IS NOT NULL THEN
                   (SELECT count(*) FROM runs x
                    WHERE x.project_id = w.project_id AND x.status = 'running')
               ELSE 0 END AS running
        FROM unnest(waiting) AS w(project_id) LEFT JOIN projects p ON p.id = w.project_id
        ORDER BY running, random()
    LOOP
        IF candidate.max_concurrent_runs IS NOT NULL THEN
            CONTINUE WHEN candidate.running >= candidate.max_concurrent_runs;
            PERFORM pg_advisory_xact_lock(1937006964, hashtext(candidate.project_id::text));
            SELECT count(*) INTO running_now FROM runs
            WHERE project_id = candidate.project_id AND status = 'running';
            CONTINUE WHEN running_now >= candidate.max_concurrent_runs;
        END IF;
        IF candidate.project_id = hint_project THEN
            -- Its run, or nothing (another claim holds it, or took it meanwhile).
            SELECT id, status INTO picked, hint_status FROM runs
            WHERE id = p_hint AND due_at <= now() FOR UPDATE SKIP LOCKED;
            IF picked IS NULL OR hint_status <> 'queued' THEN
                RETURN;
            END IF;
        ELSE
            SELECT id INTO picked FROM runs
            WHERE project_id = candidate.project_id AND status = 'queued' AND due_at <= now()
            ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED;
            CONTINUE WHEN picked IS NULL;
        END IF;
        UPDATE runs SET status = 'running', attempts = attempts + 1, lease_owner = p_worker,
                        lease_until = now() + make_interval(secs => p_lease),
                        started_at = coalesce(started_at, now())
        WHERE id = picked
        RETURNING * INTO claimed;
        IF FOUND THEN
            DELETE FROM outbox WHERE run_id = claimed.id;
            IF claimed.id IS DISTINCT FROM p_hint AND p_hint IS NOT NULL THEN
                UPDATE outbox SET available_at = now()
                WHERE run_id = p_hint AND available_at > now();
            END IF;
            RETURN NEXT claimed;
        END IF;
        RETURN;
    END LOOP;
END $$;
