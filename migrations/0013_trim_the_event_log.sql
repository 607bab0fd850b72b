-- The event log's writers, trimmed (issue 17's profile: three events a job, each
-- a trigger calling a function that ran two statements and fed two btrees).
--
-- An event is one statement: its number and its row together. A run's status
-- change writes it from the trigger itself, without a nested function call.
-- The retention sweep's scan by age uses a BRIN index: events arrive in time
-- order, so a block range summary finds the old ones, and an insert no longer
-- pays for a btree entry.
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
                     WHERE run_id = NEW.id AND executor = 'client' AND status <> 'pending'
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

DROP INDEX session_events_by_age;
CREATE INDEX session_events_by_age ON session_events USING brin (created_at);
