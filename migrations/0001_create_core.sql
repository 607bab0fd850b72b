-- Projects, their API keys, sessions and runs, and the outbox that carries runs to RabbitMQ.
-- Postgres is the truth: a run's status here decides everything; queue messages are wake-ups.

CREATE TABLE projects (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    llm_provider    text CHECK (llm_provider IN ('openai', 'openrouter')),
    llm_model       text,
    key_status      text NOT NULL DEFAULT 'unchecked'
                    CHECK (key_status IN ('unchecked', 'valid', 'invalid', 'quota_exhausted')),
    webhook_url     text,
    rate_limit_rpm  integer CHECK (rate_limit_rpm > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    display_prefix  text NOT NULL,
    hash            bytea NOT NULL UNIQUE,      -- SHA-256 of the key; the key itself is never stored
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_by_project ON api_keys (project_id);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,           -- UUIDv7: sorts by creation time
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    latest_run_id   uuid NOT NULL,
    run_count       integer NOT NULL DEFAULT 1,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_by_project ON sessions (project_id, id DESC);

-- One run per user message. The user message is `input`, the assistant answer `output`:
-- a run holds both sides of its exchange, so "one result per run" is structural.
CREATE TABLE runs (
    id                 uuid PRIMARY KEY,
    session_id         uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    project_id         uuid NOT NULL,
    turn               integer NOT NULL,
    status             text NOT NULL
                       CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    input              text NOT NULL,
    system             text,
    requested_model    text,
    max_tokens         integer,
    temperature        double precision,
    webhook_url        text,
    request_id         text,
    provider           text NOT NULL CHECK (provider IN ('openai', 'openrouter')), -- expected at submit, actual once run
    model              text NOT NULL,
    key_source         text NOT NULL CHECK (key_source IN ('project', 'default')),
    attempts           integer NOT NULL DEFAULT 0,
    lease_owner        uuid,
    lease_until        timestamptz,
    deadline           timestamptz NOT NULL,
    output             text,
    error_code         text,
    error_message      text,
    prompt_tokens      integer,
    completion_tokens  integer,
    total_tokens       integer,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    UNIQUE (session_id, turn)
);
-- A session runs one message at a time: the database itself refuses a second active run.
CREATE UNIQUE INDEX runs_one_active_per_session ON runs (session_id)
    WHERE status IN ('queued', 'running');
-- The reaper's and the heartbeat's scans touch only running runs.
CREATE INDEX runs_running_by_lease ON runs (lease_until) WHERE status = 'running';

-- A queued run always has an outbox row: a timer saying when to (re)publish its message.
-- The relay publishes due rows and pushes their time forward; the claim deletes the row.
-- So a message lost anywhere is published again, and nothing is lost between commit and publish.
CREATE TABLE outbox (
    run_id        uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    available_at  timestamptz NOT NULL DEFAULT now(),
    publishes     integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (available_at);
