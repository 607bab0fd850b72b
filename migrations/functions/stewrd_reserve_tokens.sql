-- Reserves `p_tokens` for run `p_run`'s next model call against its project's
-- token budgets (and the operator's cap on the default key, `p_default_cap`,
-- for a project without a key of its own), while the run's lease holds. Answers
-- NULL when reserved; the budget's name ('day', 'month', 'default_key_day')
-- when the call cannot fit even alone (the budget is used up for it); and
-- 'wait:' || name when it fits only once other runs' calls are counted.
-- Reservations of one project take turns (a transaction-scoped advisory lock),
-- so two workers never both take the last room.
CREATE OR REPLACE FUNCTION stewrd_reserve_tokens(p_project uuid, p_run uuid, p_tokens bigint,
                                                 p_key_source text, p_default_cap bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    p projects%ROWTYPE;
    used bigint;
    held bigint;
    name text;
    budget bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1937011058, hashtext(p_project::text));
    SELECT * INTO p FROM projects WHERE id = p_project;
    FOREACH name IN ARRAY ARRAY['day', 'month', 'default_key_day'] LOOP
        budget := CASE name
            WHEN 'day' THEN p.tokens_per_day
            WHEN 'month' THEN p.tokens_per_month
            WHEN 'default_key_day' THEN
                CASE WHEN p_key_source = 'default' THEN p_default_cap END
        END;
        CONTINUE WHEN budget IS NULL;
        SELECT coalesce(sum(u.total_tokens), 0) INTO used FROM usage_daily u
        WHERE u.project_id = p_project
          AND u.day >= CASE WHEN name = 'month' THEN date_trunc('month', today)::date
                            ELSE today END
          AND u.day <= today
          AND (name <> 'default_key_day' OR u.key_source = 'default');
        IF used + p_tokens > budget THEN
            RETURN name;
        END IF;
        -- Reservations live on running runs (the partial index by project).
        SELECT coalesce(sum(r.reserved_tokens), 0) INTO held FROM runs r
        WHERE r.project_id = p_project AND r.status = 'running' AND r.id <> p_run
          AND r.lease_until > now()
          AND (name <> 'default_key_day' OR r.key_source = 'default');
        IF used + held + p_tokens > budget THEN
            RETURN 'wait:' || name;
        END IF;
    END LOOP;
    UPDATE runs SET reserved_tokens = p_tokens WHERE id = p_run;
    RETURN NULL;
END $$;
