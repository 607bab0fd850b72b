-- Trims from the per-job write path, found by `stewrd bench throughput` (Postgres was
-- most of the CPU per job):
--
-- 1. Foreign-key checks inside the submit statement: the run references the session
--    and the outbox row references the run that the same statement just inserted, so
--    each check only re-read a row it had just written. Nothing deletes runs or sessions.
ALTER TABLE runs DROP CONSTRAINT runs_session_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_run_id_fkey;

-- 2. The lease index: the reaper and the heartbeat find running runs through the
--    active-runs index instead (at most the runs in flight plus the queue). With
--    lease_until no longer indexed, a heartbeat is a HOT update, and a claim
--    maintains one index fewer.
DROP INDEX runs_running_by_lease;

-- 3. API processes cache API-key lookups (with the project's provider choice); any
--    change to a key or a project tells them to forget that project's entries.
CREATE FUNCTION stewrd_api_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stewrd_auth', NEW.project_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION stewrd_project_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stewrd_auth', NEW.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_key_changed AFTER UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION stewrd_api_key_changed();
CREATE TRIGGER project_changed AFTER UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION stewrd_project_changed();
