-- The price of `p_model` on `p_provider`, per million tokens: its own, else
-- its dated snapshot's model's (`gpt-4o-2024-08-06` as `gpt-4o`), else, on
-- OpenRouter, OpenAI's for `openai/<model>`. No row: the price is unknown.
CREATE OR REPLACE FUNCTION stewrd_price(p_provider text, p_model text)
RETURNS TABLE (input_per_mtok float8, output_per_mtok float8)
LANGUAGE sql STABLE AS $$
    WITH names (rank, provider, model) AS (
        VALUES (1, p_provider, p_model),
               (2, p_provider, regexp_replace(p_model, '-\d{4}-\d{2}-\d{2}$', '')),
               (3, 'openai', CASE WHEN p_provider = 'openrouter' AND p_model LIKE 'openai/%'
                                  THEN substr(p_model, 8) END),
               (4, 'openai', CASE WHEN p_provider = 'openrouter' AND p_model LIKE 'openai/%'
                                  THEN regexp_replace(substr(p_model, 8), '-\d{4}-\d{2}-\d{2}$', '')
                             END)
    )
    SELECT p.input_per_mtok, p.output_per_mtok
    FROM names n JOIN stewrd_prices() p ON p.provider = n.provider AND p.model = n.model
    ORDER BY n.rank LIMIT 1
$$;
