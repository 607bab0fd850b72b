-- Trigger on runs: a run inserted or changed logs its new steps first (a final
-- answer comes before the final status), then the answers to its waits that
-- just arrived (a run resumed), then its status, so a client resuming from the log sees them in
-- commit order. A status change writes its event here directly, without a
-- nested call (the cost of three events a job, measured in issue 17).
CREATE OR REPLACE FUNCTION stewrd_log_run_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        FOR i IN OLD.step_count .. NEW.step_count - 1 LOOP
            PERFORM stewrd_log_event(NEW.session_id, NEW.id, 'run.step', i);
        END LOOP;
        IF OLD.status = 'requires_action' AND NEW.status = 'queued' THEN
            FOR i IN SELECT index FROM run_steps
                     WHERE run_id = NEW.id AND waits_for IS NOT NULL AND status <> 'pending'
                       AND finished_at = now()
                     ORDER BY index LOOP
                PERFORM stewrd_log_event(NEW.session_id, NEW.id, 'run.step', i);
            END LOOP;
        END IF;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO session_events (session_id, seq, run_id, type)
        SELECT NEW.session_id, coalesce(max(seq), 0) + 1, NEW.id, 'session.' || NEW.status
        FROM session_events WHERE session_id = NEW.session_id;
    END IF;
    RETURN NULL;
END $$;
