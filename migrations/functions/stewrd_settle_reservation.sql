-- Trigger (before update) on runs: the usage of a reserved call is being
-- counted (or the run leaves `running`): the reservation ends in the same row
-- version, so the real figure replaces the worst case with no extra write.
CREATE OR REPLACE FUNCTION stewrd_settle_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.reserved_tokens := NULL;
    RETURN NEW;
END $$;
