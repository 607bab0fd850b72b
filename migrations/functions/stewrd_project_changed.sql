-- Trigger on projects: any change to a project tells API processes to forget
-- its cached key lookups (`stewrd_auth`).
CREATE OR REPLACE FUNCTION stewrd_project_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('stewrd_auth', NEW.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
