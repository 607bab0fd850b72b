-- The one pick of the run a wake-up goes to, for a freed place
-- (`stewrd_free_place`) and for a wake-up a claim passes on: the project's
-- oldest due run not already due to be published. SKIP LOCKED: two wake-ups at
-- once must not pick the same run (each would see the other's pick only after
-- its commit). A woken row is due at '-infinity': due for the relay, and never
-- "in the future" for another pick (a transaction's now() is its start).
CREATE OR REPLACE FUNCTION stewrd_wake_next(p_project uuid) RETURNS void LANGUAGE sql AS $$
    UPDATE outbox SET available_at = '-infinity'
    WHERE run_id = (SELECT r.id FROM runs r JOIN outbox o ON o.run_id = r.id
                    WHERE r.project_id = p_project AND r.status = 'queued'
                      AND r.due_at <= now() AND o.available_at > now()
                    ORDER BY r.created_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED);
$$;
