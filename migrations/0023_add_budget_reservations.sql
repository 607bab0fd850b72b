-- Token budgets reserved, not only checked. Before each model call of a
-- project with a budget, its worst case (the prompt's tokens, over-estimated,
-- plus its output limit) is reserved here (`stewrd_reserve_tokens`), across
-- workers; the call's real usage replaces it when it is counted
-- (`stewrd_count_usage` deletes the run's reservation in the same
-- transaction). A reservation left by a crash expires with the lease it was
-- made under. One row per run: a run makes one model call at a time.
CREATE TABLE budget_reservations (
    run_id      uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    project_id  uuid NOT NULL,
    key_source  text NOT NULL,
    tokens      bigint NOT NULL CHECK (tokens >= 0),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX budget_reservations_by_project ON budget_reservations (project_id);
