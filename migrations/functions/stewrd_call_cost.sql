-- What one model call cost in US dollars: what the provider reported
-- (OpenRouter's `usage.cost`), else its tokens at the model's price; NULL
-- when neither is known. Step commits and run ends add it to `runs.cost_usd`.
--
-- PL/pgSQL, not SQL: a SQL function called from a statement's FROM is not
-- inlined, so Postgres parsed and planned its body (and `stewrd_price`'s, and
-- `stewrd_prices`') at every commit: 0.6 ms of Postgres CPU per call, a third
-- of the machine in `bench slow`. PL/pgSQL keeps the query's plan for the
-- connection's life (a price change still applies at once: the plan reads the
-- `prices` table, and redefining a function it inlined invalidates it).
CREATE OR REPLACE FUNCTION stewrd_call_cost(p_provider text, p_model text, p_prompt integer,
                                            p_completion integer, p_reported float8)
RETURNS float8 LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_reported IS NOT NULL THEN
        RETURN p_reported;
    END IF;
    RETURN (SELECT (p_prompt * p.input_per_mtok + p_completion * p.output_per_mtok) / 1e6
            FROM stewrd_price(p_provider, p_model) p);
END
$$;
