-- Token budgets reserved, not only checked. Before each model call of a
-- project with a budget, its worst case (the prompt's tokens, over-estimated,
-- plus its output limit) is reserved on the run's own row
-- (`stewrd_reserve_tokens`: the project's running runs' reservations are
-- counted, across workers); the call's counted usage settles it in the same
-- update (`stewrd_settle_reservation`, before the row is written: no extra
-- write). A reservation counts while its run's lease holds (heartbeats keep it
-- through a long call; a crash lets it lapse) and ends when the run leaves
-- `running`.
ALTER TABLE runs
    ADD COLUMN reserved_tokens bigint CHECK (reserved_tokens >= 0);

-- (body: migrations/functions/stewrd_settle_reservation.sql, applied after
-- the migrations; the trigger needs the function to exist now)
CREATE FUNCTION stewrd_settle_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END $$;

CREATE TRIGGER settle_reservation BEFORE UPDATE ON runs FOR EACH ROW
    WHEN (OLD.reserved_tokens IS NOT NULL
          AND (NEW.total_tokens IS DISTINCT FROM OLD.total_tokens
               OR NEW.status <> OLD.status))
    EXECUTE FUNCTION stewrd_settle_reservation();
