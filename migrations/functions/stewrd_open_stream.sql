-- A streamed model call begins (under the caller's lease): a `run.reset` first
-- if this step streamed before (a retry, or a resume after a crash), then the
-- `stream` event its deltas are numbered from. Returns that event's number, or
-- NULL when the lease is gone.
CREATE OR REPLACE FUNCTION stewrd_open_stream(p_run uuid, p_owner uuid, p_attempt integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint;
BEGIN
    SELECT session_id, step_count INTO r FROM runs
    WHERE id = p_run AND status = 'running' AND lease_owner = p_owner AND attempts = p_attempt
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM stream_texts
               WHERE session_id = r.session_id AND run_id = p_run AND step = r.step_count) THEN
        PERFORM stewrd_log_event(r.session_id, p_run, 'run.reset', r.step_count);
    END IF;
    n := stewrd_log_event(r.session_id, p_run, 'stream', r.step_count);
    INSERT INTO stream_texts (session_id, seq, run_id, step)
    VALUES (r.session_id, n, p_run, r.step_count);
    RETURN n;
END $$;
