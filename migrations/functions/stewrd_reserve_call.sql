-- Reserves run `p_run`'s next model call (on `p_provider`'s `p_model`, at
-- most `p_prompt` prompt tokens and `p_output` answer tokens) against its
-- project's budgets, in tokens and in dollars, and its own `max_cost_usd`,
-- while the run's lease holds. Answers NULL when reserved; 'price_unknown'
-- when a dollar budget applies and the model has no price (never run
-- unmetered); the budget's name ('day', 'month', 'default_key_day', 'usd_day',
-- 'usd_month', 'max_cost_usd') when the call cannot fit even alone; and
-- 'wait:' || name when it fits only once other runs' calls are counted.
-- Reservations of one project take turns (a transaction-scoped advisory lock),
-- so two workers never both take the last room. `p_default_cap` is the
-- operator's daily token cap on the default key, for a project without one.
CREATE OR REPLACE FUNCTION stewrd_reserve_call(p_project uuid, p_run uuid, p_prompt bigint,
                                               p_output bigint, p_key_source text,
                                               p_default_cap bigint, p_provider text,
                                               p_model text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p projects%ROWTYPE;
    run_cap float8;
    run_spent float8;
    tokens bigint := p_prompt + p_output;
    usd float8;
    input_price float8;
    output_price float8;
    used float8;
    held float8;
    name text;
    budget float8;
    amount float8;
BEGIN
    PERFORM pg_advisory_xact_lock(1937011058, hashtext(p_project::text));
    SELECT * INTO p FROM projects WHERE id = p_project;
    SELECT r.max_cost_usd, r.cost_usd INTO run_cap, run_spent FROM runs r WHERE r.id = p_run;
    IF run_cap IS NOT NULL OR p.usd_per_day IS NOT NULL OR p.usd_per_month IS NOT NULL THEN
        SELECT pr.input_per_mtok, pr.output_per_mtok INTO input_price, output_price
        FROM stewrd_price(p_provider, p_model) pr;
        IF input_price IS NULL THEN
            RETURN 'price_unknown';
        END IF;
        usd := (p_prompt * input_price + p_output * output_price) / 1e6;
        IF run_cap IS NOT NULL AND coalesce(run_spent, 0) + usd > run_cap THEN
            RETURN 'max_cost_usd';
        END IF;
    END IF;
    FOREACH name IN ARRAY ARRAY['day', 'month', 'default_key_day', 'usd_day', 'usd_month'] LOOP
        budget := CASE name
            WHEN 'day' THEN p.tokens_per_day
            WHEN 'month' THEN p.tokens_per_month
            WHEN 'default_key_day' THEN
                CASE WHEN p_key_source = 'default' THEN p_default_cap END
            WHEN 'usd_day' THEN p.usd_per_day
            WHEN 'usd_month' THEN p.usd_per_month
        END;
        CONTINUE WHEN budget IS NULL;
        amount := CASE WHEN name LIKE 'usd_%' THEN usd ELSE tokens END;
        used := stewrd_budget_used(p_project, name);
        IF used + amount > budget THEN
            RETURN name;
        END IF;
        -- Reservations live on running runs (the partial index by project).
        SELECT CASE WHEN name LIKE 'usd_%' THEN coalesce(sum(r.reserved_usd), 0)
                    ELSE coalesce(sum(r.reserved_tokens), 0) END
        INTO held FROM runs r
        WHERE r.project_id = p_project AND r.status = 'running' AND r.id <> p_run
          AND r.lease_until > now()
          AND (name <> 'default_key_day' OR r.key_source = 'default');
        IF used + held + amount > budget THEN
            RETURN 'wait:' || name;
        END IF;
    END LOOP;
    UPDATE runs SET reserved_tokens = tokens, reserved_usd = usd WHERE id = p_run;
    RETURN NULL;
END $$;
