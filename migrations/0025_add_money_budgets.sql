-- Money budgets, prices and fallback models.
-- `prices` holds the operator's prices (`PUT /v1/admin/prices`); the list
-- prices stewrd knows live in code (`stewrd_list_prices`), and an operator's
-- row for the same provider and model wins. Dollars are float8 as `cost_usd`
-- already is: budgets are compared with what was spent, never summed to the cent.
CREATE TABLE prices (
    provider        text NOT NULL CHECK (provider IN ('openai', 'openrouter')),
    model           text NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    input_per_mtok  float8 NOT NULL CHECK (input_per_mtok >= 0 AND input_per_mtok < 1e6),
    output_per_mtok float8 NOT NULL CHECK (output_per_mtok >= 0 AND output_per_mtok < 1e6),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, model)
);

-- A project's budgets in US dollars (per UTC day and calendar month) and the
-- models tried in order when its model fails (`fallback_models`).
ALTER TABLE projects
    ADD COLUMN usd_per_day float8 CHECK (usd_per_day > 0),
    ADD COLUMN usd_per_month float8 CHECK (usd_per_month > 0),
    ADD COLUMN fallback_models text[];

-- A run's own cap (`max_cost_usd`), the worst case of its call in flight
-- (`reserved_usd`, as `reserved_tokens`), the models to fall back to, and how
-- many of them it has used (`fallbacks`: the model it runs on is the
-- requested one at 0, else `fallback_models[fallbacks]`).
ALTER TABLE runs
    ADD COLUMN max_cost_usd float8 CHECK (max_cost_usd > 0),
    ADD COLUMN reserved_usd float8 CHECK (reserved_usd >= 0),
    ADD COLUMN fallback_models text[],
    ADD COLUMN fallbacks smallint NOT NULL DEFAULT 0 CHECK (fallbacks >= 0);

-- A reservation in dollars settles as one in tokens does.
DROP TRIGGER settle_reservation ON runs;
CREATE TRIGGER settle_reservation BEFORE UPDATE ON runs FOR EACH ROW
    WHEN ((OLD.reserved_tokens IS NOT NULL OR OLD.reserved_usd IS NOT NULL)
          AND (NEW.total_tokens IS DISTINCT FROM OLD.total_tokens
               OR NEW.status <> OLD.status))
    EXECUTE FUNCTION stewrd_settle_reservation();

-- Replaced by stewrd_reserve_call (tokens and dollars in one turn).
DROP FUNCTION IF EXISTS stewrd_reserve_tokens(uuid, uuid, bigint, text, bigint);
