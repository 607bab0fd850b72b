-- Trigger on api_keys: API processes cache key lookups (with the project's
-- provider choice), so any change to a key tells them to forget that
-- project's entries (`stewrd_auth`).
CREATE OR REPLACE FUNCTION stewrd_api_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stewrd_auth', NEW.project_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
