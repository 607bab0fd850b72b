-- Tenant controls: per-project caps and token budgets, usage counted per day,
-- and a claim that picks the next run fairly across projects.

ALTER TABLE projects
    ADD COLUMN max_concurrent_runs integer CHECK (max_concurrent_runs > 0),
    ADD COLUMN max_queued_runs     integer CHECK (max_queued_runs > 0),
    ADD COLUMN tokens_per_day      bigint CHECK (tokens_per_day > 0),
    ADD COLUMN tokens_per_month    bigint CHECK (tokens_per_month > 0);

-- `due_at`: a queued run is not claimed before it (a retry's backoff, a
-- rate-limit wait). `cost_usd`: what the provider reported the run's calls cost
-- (OpenRouter does; OpenAI does not, and it stays null).
ALTER TABLE runs
    ADD COLUMN due_at   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN cost_usd float8;

-- The fair claim walks the projects with queued runs, and counts each one's
-- running runs; both through partial indexes that hold only those runs. Keys
-- are unique (the run's id in the second): an index of one repeated key per
-- project made every claim pay for Postgres's clean-up of its duplicates.
CREATE INDEX runs_queued_by_project ON runs (project_id, created_at) WHERE status = 'queued';
CREATE INDEX runs_running_by_project ON runs (project_id, id) WHERE status = 'running';

-- Usage per project, UTC day, model and key source (the project's own key or the
-- operator's default). Each change adds to one of 64 shard rows, chosen by the
-- database connection making it: two transactions in flight at once are on two
-- connections, so they seldom wait on the same row (with 16 shards chosen by
-- run, finishing runs queued on them); readers sum the shards.
CREATE TABLE usage_daily (
    project_id        uuid NOT NULL,
    day               date NOT NULL,
    model             text NOT NULL,
    key_source        text NOT NULL,
    shard             smallint NOT NULL,
    runs              bigint NOT NULL DEFAULT 0, -- runs that reached a final status
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    total_tokens      bigint NOT NULL DEFAULT 0,
    cost_usd          float8,                    -- null while no call reported a cost
    PRIMARY KEY (project_id, day, model, key_source, shard)
);

-- Every change of a run's token counts (each committed model call, agent steps
-- included) and its arrival at a final status is counted here, in the
-- transaction that makes it: whichever statement wrote it, usage cannot drift
-- from the runs' own.
CREATE FUNCTION stewrd_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER count_usage AFTER UPDATE ON runs FOR EACH ROW
    WHEN (NEW.total_tokens IS DISTINCT FROM OLD.total_tokens
          OR NEW.prompt_tokens IS DISTINCT FROM OLD.prompt_tokens
          OR NEW.completion_tokens IS DISTINCT FROM OLD.completion_tokens
          OR NEW.cost_usd IS DISTINCT FROM OLD.cost_usd
          OR (NEW.status IN ('succeeded', 'failed', 'cancelled') AND NEW.status <> OLD.status))
    EXECUTE FUNCTION stewrd_count_usage();

-- A run of a project with `max_concurrent_runs` stopped running: its place is
-- free, so the project's next due run gets a message now (the messages of its
-- queued runs may all have been taken, and found nothing, while it was full).
CREATE FUNCTION stewrd_free_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id
               AND max_concurrent_runs IS NOT NULL) THEN
        -- The oldest due run not already due to be published (two places freed
        -- at once give two runs a message, not one run two).
        UPDATE outbox SET available_at = now()
        -- SKIP LOCKED: two runs finishing at once must not both pick the same
        -- run (each would see the other's pick only after its commit).
        WHERE run_id = (SELECT r.id FROM runs r JOIN outbox o ON o.run_id = r.id
                        WHERE r.project_id = NEW.project_id AND r.status = 'queued'
                          AND r.due_at <= now() AND o.available_at > now()
                        ORDER BY r.created_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER free_place AFTER UPDATE OF status ON runs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION stewrd_free_place();

-- Claims the next run for a worker, fairly. Among the projects with queued runs,
-- the one with the fewest running now goes first (ties at random), so a project
-- with a deep backlog holds no more of the workers than any other that has work,
-- and a newcomer's run is taken by the next claim whichever message woke it.
-- (With one project waiting there is nothing to rank, and nothing is counted.)
--
-- The message names a run (`p_hint`). When that run's project is the one to
-- serve, the claim takes that run or nothing: a message whose run is already
-- claimed is a spare (a duplicate, or its run was taken by a diverted claim)
-- and claims nothing, as before fairness. When another project is to be served,
-- the claim takes that project's oldest due run and gives the hint a new
-- message at once, so every queued run keeps one. Taking "the oldest" for every
-- message instead would make each claim take the run the next message names,
-- and every claim after the first duplicate would fight over the head of the
-- queue (measured: 5,000 buffers per claim at 256 in flight).
--
-- A project at its `max_concurrent_runs` is passed over; its count is taken
-- again under a per-project lock (each statement in here sees what committed
-- before it), so the cap holds exactly across workers, and only capped projects
-- pay for the lock.
--
-- `ROWS 1`: it returns at most one run. Without it the planner takes a function
-- in FROM to return 1,000 rows, and joined the claim's sessions by scanning them
-- all, on every claim (measured: 1,028 → ~300 jobs/s on `bench throughput`).
CREATE FUNCTION stewrd_claim_next(p_worker uuid, p_lease float8, p_hint uuid)
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 AS $$
DECLARE
    hint_project uuid;
    hint_status text;
    waiting uuid[];
    candidate record;
    running_now bigint;
    picked uuid;
    claimed runs;
BEGIN
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

-- Which token budget of a project is used up, if any: 'day', 'month', or
-- 'default_key_day' (the operator's cap on the default key, per project and UTC
-- day, given by the caller when the project has no key of its own). The API's
-- submit, the claim and every further step of an agent run ask the same question.
CREATE FUNCTION stewrd_exhausted_budget(p_project uuid, p_default_cap bigint)
RETURNS text LANGUAGE sql STABLE AS $$
    WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS d)
    SELECT CASE
        WHEN p.tokens_per_day IS NOT NULL
             AND (SELECT coalesce(sum(u.total_tokens), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day = today.d) >= p.tokens_per_day
            THEN 'day'
        WHEN p.tokens_per_month IS NOT NULL
             AND (SELECT coalesce(sum(u.total_tokens), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day >= date_trunc('month', today.d)::date
                    AND u.day <= today.d) >= p.tokens_per_month
            THEN 'month'
        WHEN p_default_cap IS NOT NULL
             AND NOT (p.llm_provider IS NOT NULL AND p.llm_api_key IS NOT NULL)
             AND (SELECT coalesce(sum(u.total_tokens), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day = today.d
                    AND u.key_source = 'default') >= p_default_cap
            THEN 'default_key_day'
    END
    FROM projects p, today WHERE p.id = p_project
$$;
