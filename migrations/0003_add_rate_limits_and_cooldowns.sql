-- Per-project request rate limits shared by every worker (GCRA), and shared per-key
-- cool-downs after a provider's 429.

CREATE TABLE rate_limits (
    project_id  uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    tat         timestamptz NOT NULL          -- GCRA theoretical arrival time
);

-- A call time reserved for the run while it waits for it (see db/ratelimit.rs).
ALTER TABLE runs ADD COLUMN rate_slot timestamptz;

CREATE TABLE key_cooldowns (
    fingerprint   bytea PRIMARY KEY,           -- truncated SHA-256 of the provider key, never the key
    paused_until  timestamptz NOT NULL
);
