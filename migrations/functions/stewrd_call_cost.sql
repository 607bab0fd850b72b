-- What one model call cost in US dollars: what the provider reported
-- (OpenRouter's `usage.cost`), else its tokens at the model's price; NULL
-- when neither is known. Step commits and run ends add it to `runs.cost_usd`.
CREATE OR REPLACE FUNCTION stewrd_call_cost(p_provider text, p_model text, p_prompt integer,
                                            p_completion integer, p_reported float8)
RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT coalesce(p_reported,
                    (SELECT (p_prompt * p.input_per_mtok + p_completion * p.output_per_mtok) / 1e6
                     FROM stewrd_price(p_provider, p_model) p))
$$;
