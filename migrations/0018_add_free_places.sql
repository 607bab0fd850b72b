-- Capped projects' wake-ups, level-triggered (replacing the three rules of
-- 0011, 0014 and 0015, and the relay pokes they needed).
--
-- One rule: a capped project that may have a free place carries a mark. A run
-- of it stopping (`stewrd_free_place`), or its limits changing, sets the mark
-- with a new generation; the relay publishes a room message for every due
-- mark (and again after a republish window while it stays); a room message
-- claims the project's oldest due run under the project's lock
-- (`stewrd_claim_room`), after which the mark is due again, for the next
-- place; and only a claim that finds no room or no work deletes the mark, if
-- its generation is still the one it read: a place freed meanwhile keeps it.
-- Messages of capped projects' own runs may now claim nothing and be acked:
-- the mark, not the message, stands for the place.
CREATE SEQUENCE free_place_generation;
CREATE TABLE free_places (
    project_id   uuid PRIMARY KEY,
    generation   bigint NOT NULL DEFAULT nextval('free_place_generation'),
    -- When the relay (next) publishes the room message.
    available_at timestamptz NOT NULL DEFAULT now(),
    publishes    integer NOT NULL DEFAULT 0
);

-- Every capped project with waiting runs may have room now.
INSERT INTO free_places (project_id)
SELECT DISTINCT r.project_id FROM runs r JOIN projects p ON p.id = r.project_id
WHERE r.status = 'queued' AND p.max_concurrent_runs IS NOT NULL;

-- Wake-ups are marks now, not outbox rows moved to '-infinity'.
DROP FUNCTION IF EXISTS stewrd_wake_next(uuid);
DELETE FROM schema_functions WHERE name = 'stewrd_wake_next';
-- (bodies: migrations/functions/stewrd_mark_free_place.sql, stewrd_free_place.sql,
-- stewrd_claim_room.sql, stewrd_claim_next.sql)
