-- Two ways a capped project's freed place could stay empty until another of
-- its runs ended (a budget test in CI: the second pair started one run short,
-- 3 succeeded instead of 4; the max_concurrent test's 36 s runs).
--
-- 1. A wake-up owed to a run that another message claims first was dropped.
-- When two places free together, the second `free_place` can pick the run the
-- first woke if the relay has already published it and pushed its outbox row
-- back (0011); if that run is then claimed before the relay publishes the
-- second wake-up, the claim deleted the row and the wake-up with it. A claim
-- of a capped project's run whose outbox row is due (a message owed, not yet
-- published) now passes that wake-up to the project's next waiting run: the
-- message it stood for would have been a spare, and a capped project's spare
-- claims the project's next run.
--
-- 2. A spare could still claim nothing: two copies of one run's message claimed
-- at the same time both read the run as queued, so neither took the spare's
-- path; the second waited for the project's lock, then found the run taken by
-- the first and returned nothing. Now a copy that finds its run claimed once
-- it holds the project's lock claims the project's next queued run instead:
-- the cap is counted under that lock, so it only fills a place. Uncapped
-- projects' copies still claim nothing.
-- One place picks the run a wake-up goes to: a freed place (`free_place`) and a
-- wake-up passed on by a claim. The oldest due run not already due to be
-- published; SKIP LOCKED: two wake-ups at once must not pick the same run
-- (each would see the other's pick only after its commit). A woken row is due
-- at '-infinity': due for the relay, never "in the future" for another pick.
CREATE FUNCTION stewrd_wake_next(p_project uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE outbox SET available_at = '-infinity'
    WHERE run_id = (SELECT r.id FROM runs r JOIN outbox o ON o.run_id = r.id
                    WHERE r.project_id = p_project AND r.status = 'queued'
                      AND r.due_at <= now() AND o.available_at > now()
                    ORDER BY r.created_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED);
$$;

CREATE OR REPLACE FUNCTION stewrd_free_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id
               AND max_concurrent_runs IS NOT NULL) THEN
        PERFORM stewrd_wake_next(NEW.project_id);
    END IF;
    RETURN NULL;
END $$;

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
    owed boolean;
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
            IF picked IS NOT NULL AND hint_status <> 'queued'
               AND candidate.max_concurrent_runs IS NOT NULL THEN
                -- Claimed by another copy while this one waited for the
                -- project's lock: this copy is the spare, and fills the place.
                SELECT id INTO picked FROM runs
                WHERE project_id = candidate.project_id AND status = 'queued'
                  AND due_at <= now()
                ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN picked IS NULL;
            ELSIF picked IS NULL OR hint_status <> 'queued' THEN
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
            DELETE FROM outbox WHERE run_id = claimed.id
            RETURNING available_at <= now() INTO owed;
            IF owed AND candidate.max_concurrent_runs IS NOT NULL THEN
                -- The wake-up this row owed goes to the next waiting run.
                PERFORM stewrd_wake_next(claimed.project_id);
            END IF;
            IF claimed.id IS DISTINCT FROM p_hint AND p_hint IS NOT NULL THEN
                UPDATE outbox SET available_at = now()
                WHERE run_id = p_hint AND available_at > now();
            END IF;
            RETURN NEXT claimed;
        END IF;
        RETURN;
    END LOOP;
END $$;
