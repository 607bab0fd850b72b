-- Appends one event to a session's log, numbered after the last, in one
-- statement. Every writer of a session's events holds the lock of the
-- session's active run (the statement changing it), and a run only starts once
-- the previous one is final, so `max + 1` is taken by one transaction at a time
-- and numbers follow commit order; the primary key refuses anything else.
CREATE OR REPLACE FUNCTION stewrd_log_event(p_session uuid, p_run uuid, p_type text, p_step integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO session_events (session_id, seq, run_id, type, step)
    SELECT p_session, coalesce(max(seq), 0) + 1, p_run, p_type, p_step
    FROM session_events WHERE session_id = p_session
    RETURNING seq INTO n;
    RETURN n;
END $$;
