-- Batched claims: one statement claims the runs of every message a worker has
-- at hand, instead of one statement (one plpgsql call, one scan of the waiting
-- projects, one commit) per message.
--
-- With exactly one project's runs queued and no `max_concurrent_runs` on it, a
-- batch is claimed in one set-based UPDATE that gives each message exactly what
-- `stewrd_claim_next` would (the fair claim then has nothing to rank and nothing
-- to count, and every message takes its own run or nothing). With several
-- projects waiting, `stewrd_claim_fair_batch` ranks them once for the batch. A
-- capped project returns one row of nulls, and the caller claims message by
-- message with `stewrd_claim_next`, in separate transactions: a batch taking
-- several projects' advisory locks in one transaction could deadlock with
-- another.
--
-- A message's run is claimed when it is queued, due and not locked by another
-- claim, as in `stewrd_claim_next`. A queued, due run left unclaimed for any
-- other reason (it was put back, or submitted to another project, after the
-- scan) gets its outbox row due now, so no queued run is left without a
-- message when the caller acks them all.
-- `enable_seqscan = off` (here, in `stewrd_claim_next` and `stewrd_claim_room`):
-- every statement of a claim finds rows by key, and PL/pgSQL keeps its plans
-- for the connection's life. A plan made while `runs` was small (a worker
-- started on a new or empty queue) read the whole table, and kept reading it
-- as the table grew, until the next analyze invalidated it (`auto_explain` in
-- `bench latency`; the test `a_claim_planned_while_runs_was_small…`: 10,154
-- buffers for one batch at 20,000 runs, 391 with the indexes).
CREATE OR REPLACE FUNCTION stewrd_claim_batch(p_worker uuid, p_lease float8, p_hints uuid[])
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 SET enable_seqscan = off AS $$
DECLARE
    waiting uuid[];
    ready_ids uuid[];
    not_due uuid[];
    fallback runs; -- all nulls
BEGIN
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'cannot claim runs on a read-only server'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    -- Two waiting projects are enough to know the batch cannot be set-based.
    WITH RECURSIVE ready(project_id) AS (
        (SELECT project_id FROM runs WHERE status = 'queued' ORDER BY project_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.project_id FROM runs r
                WHERE r.status = 'queued' AND r.project_id > ready.project_id
                ORDER BY r.project_id LIMIT 1)
        FROM ready WHERE ready.project_id IS NOT NULL
    )
    SELECT array_agg(project_id) INTO waiting
    FROM (SELECT project_id FROM ready WHERE project_id IS NOT NULL LIMIT 2) AS first_two;
    IF waiting IS NULL THEN
        RETURN; -- nothing queued: every message is a spare
    END IF;
    IF cardinality(waiting) > 1 THEN
        RETURN QUERY SELECT * FROM stewrd_claim_fair_batch(p_worker, p_lease, p_hints);
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM projects
               WHERE id = waiting[1] AND max_concurrent_runs IS NOT NULL) THEN
        RETURN NEXT fallback;
        RETURN;
    END IF;
    -- Every hinted row is locked by its primary key and its status checked
    -- after: a `status = 'queued'` beside `id = ANY(…)` lets the planner scan
    -- the partial index of queued runs, the whole backlog for every batch (as
    -- in `stewrd_claim_next`). Ids ordered, and locks skipped: two batches
    -- never wait on each other.
    WITH locked AS MATERIALIZED (
        SELECT id, status, due_at, project_id FROM runs WHERE id = ANY(p_hints)
        ORDER BY id FOR UPDATE SKIP LOCKED
    )
    SELECT coalesce(array_agg(id) FILTER (WHERE status = 'queued' AND due_at <= now()
                                            AND project_id = waiting[1]), '{}'),
           coalesce(array_agg(id) FILTER (WHERE status = 'queued' AND due_at > now()), '{}')
    INTO ready_ids, not_due FROM locked;
    -- The hints left (another transaction's, or queued runs of a project the
    -- scan did not see) keep a message: see `stewrd_take_batch`.
    RETURN QUERY SELECT * FROM stewrd_take_batch(p_worker, p_lease, p_hints, ready_ids, not_due);
END $$;
