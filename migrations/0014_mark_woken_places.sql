-- A freed place of a capped project wakes its next run by making that run's
-- outbox row due. It used to set the row's time to now(), and skip rows whose
-- time is not in the future; but now() is a transaction's start, so a second
-- result commit that began before the first committed saw the first's pick
-- still "in the future" and woke the same run again: one run got two messages,
-- the next none (a budget test caught it once result commits were shared and
-- two ran at once). A woken row is now due at '-infinity': due for the relay,
-- and never in the future for any other free place.
CREATE OR REPLACE FUNCTION stewrd_free_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM projects WHERE id = NEW.project_id
               AND max_concurrent_runs IS NOT NULL) THEN
        -- The oldest due run not already due to be published (two places freed
        -- at once give two runs a message, not one run two).
        UPDATE outbox SET available_at = '-infinity'
        -- SKIP LOCKED: two runs finishing at once must not both pick the same
        -- run (each would see the other's pick only after its commit).
        WHERE run_id = (SELECT r.id FROM runs r JOIN outbox o ON o.run_id = r.id
                        WHERE r.project_id = NEW.project_id AND r.status = 'queued'
                          AND r.due_at <= now() AND o.available_at > now()
                        ORDER BY r.created_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED);
    END IF;
    RETURN NULL;
END $$;
