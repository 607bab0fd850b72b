-- Webhooks: each project's signing secret (AES-256-GCM encrypted like provider keys, with
-- the previous one kept for 24 h after a rotation), events recorded in the same statement
-- that makes a run final, and every delivery attempt.

ALTER TABLE projects
    ADD COLUMN webhook_secret                bytea,
    ADD COLUMN webhook_secret_previous       bytea,
    ADD COLUMN webhook_secret_previous_until timestamptz;

CREATE TABLE webhook_events (
    id                 uuid PRIMARY KEY,           -- webhook-id: the same on every attempt
    project_id         uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    session_id         uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    run_id             uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    type               text NOT NULL,
    url                text NOT NULL,
    payload            text,                       -- frozen at the first attempt: every retry sends the same body
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'delivered', 'stopped', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    window_started_at  timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
-- The dispatcher's scan: Postgres is the schedule.
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_by_session ON webhook_events (session_id, created_at);

CREATE TABLE webhook_attempts (
    id               bigserial PRIMARY KEY,
    event_id         uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    attempted_at     timestamptz NOT NULL,
    url              text NOT NULL,
    status_code      integer,
    error            text,
    duration_ms      integer NOT NULL,
    next_attempt_at  timestamptz
);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id, id);
