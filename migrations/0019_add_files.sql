-- Files: what agents read and make. A row is written `uploading` before any
-- byte is stored and `ready` once all are, so a file is listed only whole;
-- `deleted` when its bytes are to go (housekeeping removes its objects, then
-- the row, as it does for uploads cut off). The bytes are sealed in the object
-- store; the row holds the file's data key wrapped by the master key ring
-- (bound to the project, re-wrapped by `rotate-master-key`) and the nonce
-- prefix of its chunks.
CREATE TABLE files (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL,
    purpose      text NOT NULL CHECK (purpose IN ('input', 'artifact')),
    status       text NOT NULL CHECK (status IN ('uploading', 'ready', 'deleted')),
    filename     text NOT NULL,
    content_type text,
    bytes        bigint,
    sha256       text,
    session_id   uuid,
    run_id       uuid,
    wrapped_key  bytea NOT NULL,
    seal_prefix  bytea NOT NULL,
    segments     integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ready_at     timestamptz,
    deleted_at   timestamptz
);
-- Listings (newest first) see ready files only; housekeeping the others.
CREATE INDEX files_listed ON files (project_id, id DESC) WHERE status = 'ready';
CREATE INDEX files_of_session ON files (session_id, id) WHERE status = 'ready';
CREATE INDEX files_left_over ON files (created_at) WHERE status <> 'ready';

-- The bytes of a project's ready files, kept in step by the statements that
-- make a file ready (checked against the quota there) or delete it.
ALTER TABLE projects ADD COLUMN storage_bytes bigint NOT NULL DEFAULT 0;

-- Files attached to a run's message, and the artifacts a tool step made.
ALTER TABLE runs ADD COLUMN files uuid[];
ALTER TABLE run_steps ADD COLUMN files uuid[];
