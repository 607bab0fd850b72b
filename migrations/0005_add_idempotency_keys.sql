-- Idempotency-Key on POST /v1/agent: the first answer to a key is kept for 24 h.
CREATE TABLE idempotency_keys (
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,               -- SHA-256 of the canonical request body
    status        integer NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
