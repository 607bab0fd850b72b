-- Trigger on runs: a run of a project with `max_concurrent_runs` stopped
-- running, so a place may be free: the project is marked (see migration 0018)
-- and the relay publishes a room message for it.
CREATE OR REPLACE FUNCTION stewrd_free_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id
               AND max_concurrent_runs IS NOT NULL) THEN
        PERFORM stewrd_mark_free_place(NEW.project_id);
    END IF;
    RETURN NULL;
END $$;
