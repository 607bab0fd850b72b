-- Claims the next run for a worker, fairly. Among the projects with queued runs
-- (up to 32 of them: 16 from the message's project on, 16 from a shared
-- cursor), the one with the fewest running now goes first (ties at random),
-- so a project with a deep backlog holds no more of the workers than any
-- other that has work, and a newcomer's run is taken by the next claim
-- whichever message woke it.
-- (With one project waiting there is nothing to rank, and nothing is counted.)
--
-- The message names a run (`p_hint`). When that run's project is the one to
-- serve, the claim takes that run or nothing: a message whose run is already
-- claimed is a spare (a duplicate, or its run was taken by a diverted claim)
-- and claims nothing. When another project is to be served, the claim takes
-- that project's oldest due run and gives the hint a new message at once, so
-- every queued run keeps one. Taking "the oldest" for every message instead
-- would make each claim take the run the next message names, and every claim
-- after the first duplicate would fight over the head of the queue (measured:
-- 5,000 buffers per claim at 256 in flight).
--
-- A project at its `max_concurrent_runs` is passed over; its count is taken
-- again under a per-project lock (each statement in here sees what committed
-- before it), so the cap holds exactly across workers, and only capped projects
-- pay for the lock. A message passed over is acked all the same: its project's
-- free places are marked, and filled by room messages (`stewrd_claim_room`).
-- A claim waits only for its first project lock: holding one and waiting for
-- another would close a cycle with a claim that ranked the two the other way
-- round (ties are random). A later project whose lock another claim holds is
-- passed over, and if nothing is claimed the message comes back (its run's
-- outbox row falls due now) to rank the projects again.
--
-- On a read-only server (a demoted primary, a standby) it refuses with 25006
-- before anything else, so the worker reconnects to the writable host instead
-- of reading a stale copy.
--
-- `ROWS 1`: it returns at most one run. Without it the planner takes a function
-- in FROM to return 1,000 rows, and joined the claim's sessions by scanning them
-- all, on every claim (measured: 1,028 → ~300 jobs/s on `bench throughput`).
-- Sequential scans off: see `stewrd_claim_batch`.
CREATE OR REPLACE FUNCTION stewrd_claim_next(p_worker uuid, p_lease float8, p_hint uuid)
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 SET enable_seqscan = off AS $$
DECLARE
    hint_project uuid;
    hint_status text;
    waiting uuid[];
    beyond uuid[];
    cursor_at uuid;
    zero constant uuid := '00000000-0000-0000-0000-000000000000';
    per_list constant integer := 16; -- projects in a window (see below)
    candidate record;
    running_now bigint;
    picked uuid;
    claimed runs;
    locked_one boolean := false;
    passed_over boolean := false;
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
        SELECT project_id, status INTO hint_project, hint_status FROM runs WHERE id = p_hint;
        IF hint_status IS DISTINCT FROM 'queued' THEN
            RETURN; -- a spare message
        END IF;
    END IF;
    -- The waiting projects ranked: all of them while there are at most
    -- `per_list`; beyond, the `per_list` that follow the message's project in id
    -- order (it first), and the `per_list` that follow the shared cursor, which
    -- each claim moves on past them (wrapping around): so every waiting
    -- project is ranked within a turn of the cursor (number of waiting
    -- projects / `per_list` claims) whatever the messages name, and by every
    -- claim its own messages make. Listing every waiting project cost each
    -- claim an index probe per project, and a count of its running runs:
    -- 7,300 buffers a claim with 1,000 projects waiting, 11,500 at a 100k
    -- backlog (`bench backlog`). The lists and the counts are most of what a
    -- claim reads with many projects waiting: with 1,000 projects waiting a
    -- job read 720-830 buffers with lists of 32, and 450-490 with 16.
    IF hint_project IS NOT NULL THEN
        waiting := stewrd_waiting_projects(hint_project, per_list);
    END IF;
    SELECT project_id INTO cursor_at FROM claim_cursor WHERE id = 1;
    beyond := stewrd_waiting_projects(coalesce(cursor_at, zero), per_list);
    IF cardinality(beyond) < per_list AND cursor_at IS NOT NULL THEN
        beyond := beyond || stewrd_waiting_projects(zero, per_list - cardinality(beyond), cursor_at);
    END IF;
    IF cardinality(beyond) = per_list THEN
        -- More may wait than one window holds: the cursor moves on to this
        -- window's last project, by whichever claim gets its row first (the
        -- others skip it, and look at the same window again).
        UPDATE claim_cursor SET project_id = beyond[per_list]
        WHERE id = (SELECT id FROM claim_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED);
    END IF;
    SELECT coalesce(array_agg(DISTINCT w), '{}') INTO waiting
    FROM unnest(coalesce(waiting, '{}') || beyond) AS w;
    IF cardinality(waiting) = 0 THEN
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
            IF NOT locked_one THEN
                PERFORM pg_advisory_xact_lock(1937006964, hashtext(candidate.project_id::text));
                locked_one := true;
            ELSIF NOT pg_try_advisory_xact_lock(1937006964,
                                                hashtext(candidate.project_id::text)) THEN
                passed_over := true;
                CONTINUE;
            END IF;
            SELECT count(*) INTO running_now FROM runs
            WHERE project_id = candidate.project_id AND status = 'running';
            CONTINUE WHEN running_now >= candidate.max_concurrent_runs;
        END IF;
        IF candidate.project_id = hint_project THEN
            -- Its run, or nothing (another claim holds it, or took it meanwhile).
            SELECT id, status INTO picked, hint_status FROM runs
            WHERE id = p_hint AND due_at <= now() FOR UPDATE SKIP LOCKED;
            IF picked IS NULL OR hint_status <> 'queued' THEN
                -- Queued and not claimable now (not due yet, or held by
                -- another transaction): this message is acked all the same,
                -- and the relay may have put the run's next publish off by its
                -- republish window. The run's outbox row falls due when the
                -- run can be claimed, so it gets a message then (waiting for
                -- the row's lock: see `stewrd_take_batch`).
                UPDATE outbox o SET available_at = greatest(now(), r.due_at)
                FROM runs r
                WHERE o.run_id = p_hint
                  AND r.id = p_hint AND r.status = 'queued'
                  AND o.available_at > greatest(now(), r.due_at);
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
            IF claimed.id IS DISTINCT FROM p_hint AND p_hint IS NOT NULL THEN
                -- Both rows locked first, in run id order: two claims each
                -- serving the other's hint would deadlock otherwise (see
                -- `stewrd_take_batch`).
                PERFORM 1 FROM outbox WHERE run_id IN (claimed.id, p_hint)
                ORDER BY run_id FOR UPDATE;
                UPDATE outbox SET available_at = now()
                WHERE run_id = p_hint AND available_at > now();
            END IF;
            DELETE FROM outbox WHERE run_id = claimed.id;
            RETURN NEXT claimed;
        END IF;
        RETURN;
    END LOOP;
    IF passed_over THEN
        UPDATE outbox SET available_at = now() WHERE run_id = p_hint AND available_at > now();
    END IF;
END $$;
