-- A run's browser state (URL, cookies, local storage), encrypted under the
-- master key and bound to its project: saved after every browser action, so
-- a run resumed elsewhere (or whose browser host died) gets a new browser
-- that goes on where the last one was. Removed when the run ends. `id` is
-- the run's (the key `stewrd rotate-master-key` walks every secret by).
CREATE TABLE browser_states (
    id         uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    project_id uuid NOT NULL,
    sealed     bytea NOT NULL,
    saved_at   timestamptz NOT NULL DEFAULT now()
);
