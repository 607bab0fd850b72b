-- Trigger (before update) on runs: the usage of a reserved call is being
-- counted (or the run leaves `running`): the reservation, in tokens and in
-- dollars, ends in the same row version, so the real figure (the call's
-- tokens and `cost_usd`, written in this update) replaces the worst case with
-- no extra write.
CREATE OR REPLACE FUNCTION stewrd_settle_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.reserved_tokens := NULL;
    NEW.reserved_usd := NULL;
    RETURN NEW;
END $$;
