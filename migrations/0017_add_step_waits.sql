-- One way to wait. A tool call a person must answer is a step in one state,
-- `pending` with what it waits for (`waits_for`: the client's output, and
-- later other waits), kept after the answer so the event log can tell the
-- answers that just arrived. It replaces tests of the tool's executor: a
-- step's wait, not its kind, decides how it is shown, expired and resumed.
ALTER TABLE run_steps ADD COLUMN waits_for text CHECK (waits_for IN ('client'));
ALTER TABLE run_steps ADD CONSTRAINT run_steps_pending_waits
    CHECK (status <> 'pending' OR waits_for IS NOT NULL) NOT VALID;
UPDATE run_steps SET waits_for = 'client' WHERE status = 'pending';
ALTER TABLE run_steps VALIDATE CONSTRAINT run_steps_pending_waits;
-- (body: migrations/functions/stewrd_log_run_change.sql, which now logs the
-- answers by their wait)
