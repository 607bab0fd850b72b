-- What a project has used of budget `p_budget` in its period so far, from
-- `usage_daily`: tokens for 'day', 'month' and 'default_key_day' (the
-- default key's only), US dollars for 'usd_day' and 'usd_month'; UTC days and
-- calendar months. The submit's check (`stewrd_exhausted_budget`) and the
-- call's reservation (`stewrd_reserve_call`) count it the same way.
-- PL/pgSQL keeps its plan (see `stewrd_call_cost`).
CREATE OR REPLACE FUNCTION stewrd_budget_used(p_project uuid, p_budget text)
RETURNS float8 LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS d)
    SELECT CASE WHEN p_budget LIKE 'usd_%' THEN coalesce(sum(u.cost_usd), 0)
                ELSE coalesce(sum(u.total_tokens), 0) END::float8
    FROM usage_daily u, today
    WHERE u.project_id = p_project
      AND u.day >= CASE WHEN p_budget IN ('month', 'usd_month')
                        THEN date_trunc('month', today.d)::date ELSE today.d END
      AND u.day <= today.d
      AND (p_budget <> 'default_key_day' OR u.key_source = 'default'));
END
$$;
