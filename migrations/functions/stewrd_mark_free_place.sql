-- Marks a project as maybe having a free place (see migration 0018): the mark
-- is due for the relay at once, with a new generation, so a claim that read
-- the old one and found no room leaves it in place. PL/pgSQL keeps its plan
-- (see `stewrd_call_cost`).
CREATE OR REPLACE FUNCTION stewrd_mark_free_place(p_project uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO free_places (project_id) VALUES (p_project)
    ON CONFLICT (project_id) DO UPDATE
        SET generation = nextval('free_place_generation'), available_at = now(), publishes = 0;
END
$$;
