-- Approvals. A call that needs a person's yes waits as a step in the one
-- waiting state (`pending`, `waits_for = 'approval'`). The decision is kept on
-- the step ({"decision": "approved" | "denied", "reason", "decided_at", "by"}):
-- a denied call is answered by it; an approved one stays `pending` until the
-- resumed run makes it, at the same index, with the arguments approved.
ALTER TABLE run_steps
    ADD COLUMN approval jsonb,
    DROP CONSTRAINT IF EXISTS run_steps_waits_for_check,
    ADD CONSTRAINT run_steps_waits_for_check CHECK (waits_for IN ('client', 'approval'));
