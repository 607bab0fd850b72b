-- Up to `p_count` projects with queued runs, in id order, from `p_from` on
-- (inclusive) and before `p_before` (when given): a loose index scan of the
-- queued runs' partial index, one probe per project found, however deep the
-- backlog of each. PL/pgSQL so its plan is kept for the connection's life
-- (a SQL function's body is parsed and planned at every call: see
-- `stewrd_call_cost`).
CREATE OR REPLACE FUNCTION stewrd_waiting_projects(p_from uuid, p_count integer,
                                                   p_before uuid DEFAULT NULL)
RETURNS uuid[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH RECURSIVE ready(project_id, n) AS (
        (SELECT project_id, 1 FROM runs
         WHERE status = 'queued' AND project_id >= p_from ORDER BY project_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.project_id FROM runs r
                WHERE r.status = 'queued' AND r.project_id > ready.project_id
                ORDER BY r.project_id LIMIT 1), ready.n + 1
        FROM ready WHERE ready.project_id IS NOT NULL AND ready.n < p_count
    )
    SELECT coalesce(array_agg(project_id ORDER BY project_id), '{}') FROM ready
    WHERE project_id IS NOT NULL AND (p_before IS NULL OR project_id < p_before));
END
$$;
