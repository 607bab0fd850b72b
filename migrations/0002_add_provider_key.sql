-- A project's own provider key, AES-256-GCM encrypted (shared/src/crypto.rs) and bound
-- to the project: never stored in plaintext.
ALTER TABLE projects ADD COLUMN llm_api_key bytea;
