-- Trigger on runs: a run of a project with `max_concurrent_runs` stopped
-- running, so its place is free: the project's next due run gets a message now
-- (the messages of its queued runs may all have been taken, and found nothing,
-- while it was full).
CREATE OR REPLACE FUNCTION stewrd_free_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id
               AND max_concurrent_runs IS NOT NULL) THEN
        PERFORM stewrd_wake_next(NEW.project_id);
    END IF;
    RETURN NULL;
END $$;
