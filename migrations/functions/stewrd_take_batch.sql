-- The end of a batched claim (`stewrd_claim_batch`, `stewrd_claim_fair_batch`):
-- takes the runs the claim chose (`p_taken`, locked by the caller) and leaves
-- every other hint with a message, since the caller acks them all. A hint not
-- taken (served through another run, held by another transaction, or a
-- project the scan did not see) gets its outbox row due now, if it has one;
-- one queued but not due yet (`p_not_due`) gets it due when the run is (the
-- relay may have put its next publish off by its republish window).
--
-- Those rows are locked waiting, not skipped: the message is acked whatever
-- happens here, so a row skipped while the relay held it (its `settle`,
-- putting a confirmed publish off by the republish window) was left five
-- minutes out with its message gone, the run queued with nothing to wake it
-- (the MCP kill -9 test: one run in 300, now and then). Waiting, the claim
-- sees the relay's write and makes the row due after it.
--
-- Every outbox row the claim writes (its runs', deleted, and the hints'
-- left) is locked first, in one pass in run id order. Two claims holding
-- crossed copies of two messages (each took the run the other left) used to
-- delete their own run's row and then wait for the other's: a deadlock, which
-- Postgres broke after a second by failing one claim, whose worker then
-- claimed its messages one by one. Locked in one order, the second claim
-- waits for the first and goes on after it.
CREATE OR REPLACE FUNCTION stewrd_take_batch(p_worker uuid, p_lease float8, p_hints uuid[],
                                             p_taken uuid[], p_not_due uuid[])
RETURNS SETOF runs LANGUAGE plpgsql ROWS 1 SET enable_seqscan = off AS $$
DECLARE
    leftover uuid[];
BEGIN
    SELECT coalesce(array_agg(h), '{}') INTO leftover FROM unnest(p_hints) AS h
    WHERE h <> ALL(p_taken) AND h <> ALL(p_not_due);
    PERFORM 1 FROM outbox WHERE run_id = ANY(p_taken || leftover || p_not_due)
    ORDER BY run_id FOR UPDATE;
    RETURN QUERY
    WITH claimed AS (
        UPDATE runs SET status = 'running', attempts = attempts + 1, lease_owner = p_worker,
                        lease_until = now() + make_interval(secs => p_lease),
                        started_at = coalesce(started_at, now())
        WHERE id = ANY(p_taken)
        RETURNING *
    ),
    unqueued AS (
        DELETE FROM outbox o USING claimed WHERE o.run_id = claimed.id
    )
    SELECT * FROM claimed;
    IF cardinality(leftover) > 0 THEN
        UPDATE outbox SET available_at = now()
        WHERE run_id = ANY(leftover) AND available_at > now();
    END IF;
    IF cardinality(p_not_due) > 0 THEN
        UPDATE outbox o SET available_at = r.due_at
        FROM runs r
        WHERE o.run_id = ANY(p_not_due)
          AND r.id = o.run_id AND r.status = 'queued' AND o.available_at > r.due_at;
    END IF;
END $$;
