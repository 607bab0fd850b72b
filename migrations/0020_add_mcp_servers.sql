-- MCP servers as tool sources. A project's servers are one JSON list (names,
-- URLs, header names, allowed tools, timeouts), and their header values one
-- sealed JSON object under the master key ring ({"<server>": {"<header>":
-- "<value>"}}), bound to the project and re-wrapped by `rotate-master-key`.
ALTER TABLE projects
    ADD COLUMN mcp_servers jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN mcp_headers bytea;

-- The MCP tools a run offers, listed at its first step and fixed for its life.
ALTER TABLE runs ADD COLUMN mcp_tools jsonb;

-- Tool steps name the MCP server that ran them.
ALTER TABLE run_steps
    ADD COLUMN server text,
    DROP CONSTRAINT IF EXISTS run_steps_executor_check,
    ADD CONSTRAINT run_steps_executor_check CHECK (executor IN ('server', 'client', 'mcp'));

-- Calls sent and not to be sent again: committed before a call of a tool that
-- may not be repeated leaves stewrd. A run resumed after a crash finds the
-- calls it sent whose results were never committed: their outcome is unknown,
-- and they are not made again.
CREATE TABLE sent_calls (
    run_id       uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    tool_call_id text NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, tool_call_id)
);
