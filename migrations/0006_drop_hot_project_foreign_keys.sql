-- Every new session's foreign-key check took a FOR KEY SHARE lock on its project's row.
-- With many concurrent submits to one project those locks become MultiXacts, which made
-- the submit statement the most expensive one per job. Projects are never deleted, and a
-- session is only created for the project whose API key was just checked, so the
-- references from the high-volume tables to `projects` are kept by the application.
ALTER TABLE sessions DROP CONSTRAINT sessions_project_id_fkey;
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_project_id_fkey;
