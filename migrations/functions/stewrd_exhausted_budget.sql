-- Which budget of a project is used up, if any: 'day', 'month' (tokens),
-- 'usd_day', 'usd_month' (dollars), or 'default_key_day' (the operator's cap
-- on the default key, per project and UTC day, given by the caller when the
-- project has no key of its own). The API's submit asks it; each model call
-- reserves against the same sums (`stewrd_reserve_call`). PL/pgSQL keeps its
-- plan (see `stewrd_call_cost`).
CREATE OR REPLACE FUNCTION stewrd_exhausted_budget(p_project uuid, p_default_cap bigint)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT CASE
        WHEN p.tokens_per_day IS NOT NULL
             AND stewrd_budget_used(p.id, 'day') >= p.tokens_per_day THEN 'day'
        WHEN p.tokens_per_month IS NOT NULL
             AND stewrd_budget_used(p.id, 'month') >= p.tokens_per_month THEN 'month'
        WHEN p.usd_per_day IS NOT NULL
             AND stewrd_budget_used(p.id, 'usd_day') >= p.usd_per_day THEN 'usd_day'
        WHEN p.usd_per_month IS NOT NULL
             AND stewrd_budget_used(p.id, 'usd_month') >= p.usd_per_month THEN 'usd_month'
        WHEN p_default_cap IS NOT NULL
             AND NOT (p.llm_provider IS NOT NULL AND p.llm_api_key IS NOT NULL)
             AND stewrd_budget_used(p.id, 'default_key_day') >= p_default_cap
            THEN 'default_key_day'
    END
    FROM projects p WHERE p.id = p_project);
END
$$;
