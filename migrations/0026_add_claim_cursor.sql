-- Where fair claims look for waiting projects beyond the message's own: a
-- cursor that moves through the projects with queued runs, in id order, by
-- up to 32 projects per claim (see `stewrd_claim_next`). One row, unlogged:
-- after a crash it starts again from the first project, which costs nothing.
CREATE UNLOGGED TABLE claim_cursor (
    id         integer PRIMARY KEY CHECK (id = 1),
    project_id uuid
);
INSERT INTO claim_cursor (id, project_id) VALUES (1, NULL);
