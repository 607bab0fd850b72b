-- The list prices stewrd knows, in US dollars per million tokens (input,
-- output), standard tier, as OpenAI's pricing page
-- (https://platform.openai.com/docs/pricing) listed them in 2025; dated
-- snapshots are priced as their model unless listed apart. OpenRouter's
-- `openai/<model>` is priced as `<model>` for reservations (its reported
-- `usage.cost` is what is charged). Prices change: an operator's row
-- (`PUT /v1/admin/prices`) wins over this list, and this list changes only
-- with the code.
CREATE OR REPLACE FUNCTION stewrd_list_prices()
RETURNS TABLE (provider text, model text, input_per_mtok float8, output_per_mtok float8)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('openai', 'gpt-5', 1.25::float8, 10.00::float8),
           ('openai', 'gpt-5-mini', 0.25, 2.00),
           ('openai', 'gpt-5-nano', 0.05, 0.40),
           ('openai', 'gpt-4.1', 2.00, 8.00),
           ('openai', 'gpt-4.1-mini', 0.40, 1.60),
           ('openai', 'gpt-4.1-nano', 0.10, 0.40),
           ('openai', 'gpt-4o', 2.50, 10.00),
           ('openai', 'gpt-4o-2024-05-13', 5.00, 15.00),
           ('openai', 'gpt-4o-mini', 0.15, 0.60),
           ('openai', 'o1', 15.00, 60.00),
           ('openai', 'o1-mini', 1.10, 4.40),
           ('openai', 'o3', 2.00, 8.00),
           ('openai', 'o3-mini', 1.10, 4.40),
           ('openai', 'o4-mini', 1.10, 4.40),
           ('openai', 'gpt-4-turbo', 10.00, 30.00),
           ('openai', 'gpt-4', 30.00, 60.00),
           ('openai', 'gpt-3.5-turbo', 0.50, 1.50)
$$;
