-- Agent runs: a run is a loop of steps (model calls and tool calls), may pause in
-- `requires_action` for the client's tools, and offers the project's server tools.

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (
    status IN ('queued', 'running', 'requires_action', 'succeeded', 'failed', 'cancelled'));

-- A paused run still holds its session: a new message waits (409) until it ends.
DROP INDEX runs_one_active_per_session;
CREATE UNIQUE INDEX runs_one_active_per_session ON runs (session_id)
    WHERE status IN ('queued', 'running', 'requires_action');

-- `json`, not `jsonb`, for what the client wrote: jsonb rewrites numbers (1e308
-- becomes 309 digits, which serde_json then refuses), json keeps the text we
-- stored, so it reads back exactly.
ALTER TABLE runs
    ADD COLUMN tools             json,                       -- the client's tools, as given
    ADD COLUMN tool_choice       json,
    ADD COLUMN response_format   json,
    ADD COLUMN max_steps         integer NOT NULL DEFAULT 10 CHECK (max_steps BETWEEN 1 AND 100),
    ADD COLUMN max_total_tokens  integer CHECK (max_total_tokens > 0),
    ADD COLUMN step_count        integer NOT NULL DEFAULT 0, -- committed rows in run_steps
    ADD COLUMN progress_attempt  integer NOT NULL DEFAULT 0, -- `attempts` when a step last committed
    ADD COLUMN action_expires_at timestamptz;                -- while requires_action

-- The expiry sweep looks only at paused runs.
CREATE INDEX runs_awaiting_action ON runs (action_expires_at) WHERE status = 'requires_action';

-- The project's server tools, offered to the model on every run (at most 32).
ALTER TABLE projects ADD COLUMN server_tools json NOT NULL DEFAULT '[]';

-- Committed steps. A step in flight has no row: after a crash the run resumes at
-- the first step without one. A client tool call is a row from the moment the
-- model asks for it (`pending`) until its output arrives.
CREATE TABLE run_steps (
    run_id            uuid NOT NULL,
    index             integer NOT NULL,
    type              text NOT NULL CHECK (type IN ('model_call', 'tool_call')),
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- model_call: what the model answered, as it answered it.
    model             text,
    content           text,
    tool_calls        jsonb,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    -- tool_call: one call and its result.
    tool_call_id      text,
    name              text,
    arguments         text,
    executor          text CHECK (executor IN ('server', 'client')),
    output            text,
    attempts          integer NOT NULL DEFAULT 0,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    PRIMARY KEY (run_id, index)
);
