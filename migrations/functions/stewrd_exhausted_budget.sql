-- Which budget of a project is used up, if any: 'day', 'month' (tokens),
-- 'usd_day', 'usd_month' (dollars), or 'default_key_day' (the operator's cap
-- on the default key, per project and UTC day, given by the caller when the
-- project has no key of its own). The API's
-- submit, the claim and every further step of an agent run ask the same question.
CREATE OR REPLACE FUNCTION stewrd_exhausted_budget(p_project uuid, p_default_cap bigint)
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
        WHEN p.usd_per_day IS NOT NULL
             AND (SELECT coalesce(sum(u.cost_usd), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day = today.d) >= p.usd_per_day
            THEN 'usd_day'
        WHEN p.usd_per_month IS NOT NULL
             AND (SELECT coalesce(sum(u.cost_usd), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day >= date_trunc('month', today.d)::date
                    AND u.day <= today.d) >= p.usd_per_month
            THEN 'usd_month'
        WHEN p_default_cap IS NOT NULL
             AND NOT (p.llm_provider IS NOT NULL AND p.llm_api_key IS NOT NULL)
             AND (SELECT coalesce(sum(u.total_tokens), 0) FROM usage_daily u
                  WHERE u.project_id = p.id AND u.day = today.d
                    AND u.key_source = 'default') >= p_default_cap
            THEN 'default_key_day'
    END
    FROM projects p, today WHERE p.id = p_project
$$;
