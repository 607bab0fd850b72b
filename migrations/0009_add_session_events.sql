-- Streaming: every session has an event log, numbered 1, 2, 3… in commit order,
-- so a client resumes exactly after any event it saw. The triggers below write
-- the status changes and the committed steps of runs; a streamed model call
-- writes a `stream` row (never sent: the deltas that follow it are numbered
-- from it) and its text so far into `stream_texts`.

ALTER TABLE runs ADD COLUMN stream boolean NOT NULL DEFAULT false;

CREATE TABLE session_events (
    session_id uuid NOT NULL,
    seq        bigint NOT NULL,
    run_id     uuid NOT NULL,
    -- session.<status>, run.step, run.reset, or stream.
    type       text NOT NULL,
    -- run.step, run.reset, stream: the step's index in run_steps numbering.
    step       integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);

-- The retention sweep looks for old rows.
CREATE INDEX session_events_by_age ON session_events (created_at);

-- The text of one streamed model call, checkpointed while it streams and whole
-- before its step commits.
CREATE TABLE stream_texts (
    session_id uuid NOT NULL,
    seq        bigint NOT NULL, -- its `stream` event
    run_id     uuid NOT NULL,
    step       integer NOT NULL,
    text       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);

-- Appends one event. Every writer of a session's events holds the lock of the
-- session's active run (the statement changing it), and a run only starts once
-- the previous one is final, so `max + 1` is taken by one transaction at a time
-- and numbers follow commit order. The primary key refuses anything else.
CREATE FUNCTION stewrd_log_event(p_session uuid, p_run uuid, p_type text, p_step integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT coalesce(max(seq), 0) + 1 INTO n FROM session_events WHERE session_id = p_session;
    INSERT INTO session_events (session_id, seq, run_id, type, step)
    VALUES (p_session, n, p_run, p_type, p_step);
    RETURN n;
END $$;

-- A run inserted or changed: its new steps first (a final answer comes before
-- the final status), then the client results that just arrived, then the status.
CREATE FUNCTION stewrd_log_run_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM stewrd_log_event(NEW.session_id, NEW.id, 'session.' || NEW.status, NULL);
        RETURN NULL;
    END IF;
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
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM stewrd_log_event(NEW.session_id, NEW.id, 'session.' || NEW.status, NULL);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_log_insert AFTER INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION stewrd_log_run_change();
CREATE TRIGGER runs_log_update AFTER UPDATE OF status, step_count ON runs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.step_count IS DISTINCT FROM NEW.step_count)
    EXECUTE FUNCTION stewrd_log_run_change();

-- A streamed model call begins (under the caller's lease): a `run.reset` first
-- if this step streamed before (a retry, or a resume after a crash), then the
-- `stream` event its deltas are numbered from. Returns that event's number, or
-- NULL when the lease is gone.
CREATE FUNCTION stewrd_open_stream(p_run uuid, p_owner uuid, p_attempt integer)
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
