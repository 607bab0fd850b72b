-- Output contracts. A final answer that does not match the run's
-- `response_format` schema is kept as a model step with what failed
-- (`rejected`: the validation errors, which the model is sent back with);
-- `max_repairs` bounds how many times (counted in `max_steps`).
ALTER TABLE run_steps ADD COLUMN rejected text;
ALTER TABLE runs ADD COLUMN max_repairs integer NOT NULL DEFAULT 2
    CHECK (max_repairs BETWEEN 0 AND 10);
