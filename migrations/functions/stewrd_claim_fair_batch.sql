-- A batch of messages claimed in one statement while several projects wait
-- (called by `stewrd_claim_batch`): the claims `stewrd_claim_next` would make
-- one message at a time, made together. Claimed one by one, every message paid
-- for the lists of waiting projects and a count of each one's running runs:
-- with 1,000 projects waiting a job cost Postgres three to four times a
-- one-project job (`bench backlog`). Here the lists and counts are made once
-- for the batch.
--
-- The projects ranked are the hinted runs' own and a window of `per_list` × 4
-- from the shared cursor (which moves on past it, wrapping around, as in
-- `stewrd_claim_next`). The batch's claims (one per message whose run is
-- queued and due) go to them as one claim at a time would give them, each to
-- the project with the fewest running then: the projects with the fewest are
-- raised to a common level, and what is left over goes one each to the lowest
-- (ties at random). A project's own hinted runs are its claims first, then its
-- oldest due runs. A project that cannot fill its claims (its runs are not due,
-- or held by another claim, or fewer than its share) is dropped and the claims
-- it left are given again among the others, as a claim at a time would pass
-- over it to the next; what no project can fill goes to the batch's own hinted
-- runs, so a batch claims at least its own due hints.
--
-- Every message is acked by the caller: a hinted run left queued (its project
-- was served through another's run) gets its outbox row due now, so it keeps a
-- message, and a run claimed in a message's place keeps its own message, which
-- finds it claimed and is a spare.
--
-- A capped project among those ranked returns the row of nulls: the caller
-- claims message by message, each capped project counted under its lock.
CREATE OR REPLACE FUNCTION stewrd_claim_fair_batch(p_worker uuid, p_lease float8, p_hints uuid[])
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 SET enable_seqscan = off AS $$
DECLARE
    per_list constant integer := 16; -- as in `stewrd_claim_next`
    window_size constant integer := per_list * 4;
    zero constant uuid := '00000000-0000-0000-0000-000000000000';
    cursor_at uuid;
    beyond uuid[];
    ready_ids uuid[];
    ready_projects uuid[];
    not_due uuid[];
    ranked_projects uuid[];
    claim_ids uuid[] := '{}';
    wanted integer;
    loads bigint[]; -- each ranked project's running runs, and its claims so far
    eligible uuid[];
    round_ids uuid[];
    round_projects uuid[];
    short uuid[];
    rounds integer := 0;
    fallback runs; -- all nulls
BEGIN
    -- The hinted rows, locked by key (see `stewrd_claim_batch`).
    WITH locked AS MATERIALIZED (
        SELECT id, status, due_at, project_id FROM runs WHERE id = ANY(p_hints)
        ORDER BY id FOR UPDATE SKIP LOCKED
    )
    SELECT coalesce(array_agg(id) FILTER (WHERE status = 'queued' AND due_at <= now()), '{}'),
           coalesce(array_agg(DISTINCT project_id)
                    FILTER (WHERE status = 'queued' AND due_at <= now()), '{}'),
           coalesce(array_agg(id) FILTER (WHERE status = 'queued' AND due_at > now()), '{}')
    INTO ready_ids, ready_projects, not_due FROM locked;
    wanted := cardinality(ready_ids);
    SELECT project_id INTO cursor_at FROM claim_cursor WHERE id = 1;
    beyond := stewrd_waiting_projects(coalesce(cursor_at, zero), window_size);
    IF cardinality(beyond) < window_size AND cursor_at IS NOT NULL THEN
        beyond := beyond
            || stewrd_waiting_projects(zero, window_size - cardinality(beyond), cursor_at);
    END IF;
    SELECT coalesce(array_agg(DISTINCT w), '{}') INTO ranked_projects
    FROM unnest(ready_projects || beyond) AS w;
    IF EXISTS (SELECT 1 FROM projects
               WHERE id = ANY(ranked_projects) AND max_concurrent_runs IS NOT NULL) THEN
        RETURN NEXT fallback;
        RETURN;
    END IF;
    IF cardinality(beyond) = window_size THEN
        UPDATE claim_cursor SET project_id = beyond[window_size]
        WHERE id = (SELECT id FROM claim_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED);
    END IF;
    IF wanted > 0 THEN
        SELECT array_agg((SELECT count(*) FROM runs x
                          WHERE x.project_id = w AND x.status = 'running') ORDER BY o)
        INTO loads FROM unnest(ranked_projects) WITH ORDINALITY AS u(w, o);
        eligible := ranked_projects;
    END IF;
    -- Rounds: the claims left are given among the projects still eligible;
    -- a project that came up short is dropped for the next round.
    WHILE cardinality(claim_ids) < wanted AND cardinality(eligible) > 0 AND rounds < 8 LOOP
        rounds := rounds + 1;
        WITH counted AS (
            SELECT p AS project_id, l AS running, random() AS tie
            FROM unnest(ranked_projects, loads) AS u(p, l) WHERE p = ANY(eligible)
        ),
        ranked AS (
            SELECT project_id, running,
                   row_number() OVER (ORDER BY running, tie) AS k,
                   (sum(running) OVER (ORDER BY running, tie))::bigint AS up_to
            FROM counted
        ),
        -- The most projects (the `k` with the fewest running) that the claims
        -- left raise to the running count of the `k`th.
        raised AS (
            SELECT k, running AS level, k * running - up_to AS cost,
                   wanted - cardinality(claim_ids) AS claims
            FROM ranked
            WHERE k * running - up_to <= wanted - cardinality(claim_ids)
            ORDER BY k DESC LIMIT 1
        ),
        given AS (
            SELECT r.project_id,
                   (g.level + (g.claims - g.cost) / g.k - r.running
                    + CASE WHEN r.k <= (g.claims - g.cost) % g.k THEN 1 ELSE 0 END)::integer AS n
            FROM ranked r, raised g WHERE r.k <= g.k
        ),
        hinted AS (
            SELECT x.id, x.project_id,
                   row_number() OVER (PARTITION BY x.project_id ORDER BY x.created_at) AS j
            FROM runs x WHERE x.id = ANY(ready_ids) AND x.id <> ALL(claim_ids)
        ),
        own AS (
            SELECT h.id, h.project_id FROM hinted h JOIN given g USING (project_id)
            WHERE h.j <= g.n
        ),
        rest AS (
            SELECT g.project_id, g.n - count(o.id) AS n
            FROM given g LEFT JOIN own o USING (project_id)
            GROUP BY g.project_id, g.n
        ),
        oldest AS (
            SELECT rest.project_id, t.id FROM rest
            CROSS JOIN LATERAL (
                SELECT x.id FROM runs x
                WHERE x.project_id = rest.project_id AND x.status = 'queued'
                  AND x.due_at <= now() AND x.id <> ALL(ready_ids) AND x.id <> ALL(claim_ids)
                ORDER BY x.created_at LIMIT rest.n
                FOR UPDATE SKIP LOCKED
            ) AS t
            WHERE rest.n > 0
        ),
        picked AS (
            SELECT id, project_id FROM own UNION ALL SELECT id, project_id FROM oldest
        )
        SELECT (SELECT coalesce(array_agg(id), '{}') FROM picked),
               (SELECT coalesce(array_agg(project_id), '{}') FROM picked),
               (SELECT coalesce(array_agg(g.project_id), '{}') FROM given g
                WHERE g.n > (SELECT count(*) FROM picked p WHERE p.project_id = g.project_id))
        INTO round_ids, round_projects, short;
        claim_ids := claim_ids || round_ids;
        SELECT array_agg(l + (SELECT count(*) FROM unnest(round_projects) AS r WHERE r = p)
                         ORDER BY o)
        INTO loads FROM unnest(ranked_projects, loads) WITH ORDINALITY AS u(p, l, o);
        SELECT coalesce(array_agg(e), '{}') INTO eligible
        FROM unnest(eligible) AS e WHERE e <> ALL(short);
    END LOOP;
    IF cardinality(claim_ids) < wanted THEN
        SELECT claim_ids || coalesce(array_agg(h), '{}') INTO claim_ids
        FROM (SELECT h FROM unnest(ready_ids) AS h WHERE h <> ALL(claim_ids)
              LIMIT wanted - cardinality(claim_ids)) AS unfilled;
    END IF;
    RETURN QUERY SELECT * FROM stewrd_take_batch(p_worker, p_lease, p_hints, claim_ids, not_due);
END $$;
