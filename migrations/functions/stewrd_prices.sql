-- Every price in force: the operator's (`source` 'operator') and the list
-- prices they do not replace ('list'). `GET /v1/admin/prices` shows it.
CREATE OR REPLACE FUNCTION stewrd_prices()
RETURNS TABLE (provider text, model text, input_per_mtok float8, output_per_mtok float8,
               source text)
LANGUAGE sql STABLE AS $$
    SELECT p.provider, p.model, p.input_per_mtok, p.output_per_mtok, 'operator' FROM prices p
    UNION ALL
    SELECT l.provider, l.model, l.input_per_mtok, l.output_per_mtok, 'list'
    FROM stewrd_list_prices() l
    WHERE NOT EXISTS (SELECT 1 FROM prices p
                      WHERE p.provider = l.provider AND p.model = l.model)
$$;
