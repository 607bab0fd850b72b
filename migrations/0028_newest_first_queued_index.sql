-- The queued runs' index, newest first within each project. The fair claim
-- lists the waiting projects with a loose scan that lands on each project's
-- first entry, and claims take each project's oldest run, whose entry stays
-- in the index until a vacuum: oldest first, every probe walked through all
-- the runs its project had claimed since the last vacuum (`bench backlog`,
-- 1,000 projects at a 100k backlog: 420 buffers per list of 32 projects, and
-- more as the drain went on). Newest first, a probe lands on a run that is
-- still queued, and the pick of a project's oldest run reads the index
-- backwards.
CREATE INDEX runs_queued_by_project_newest
    ON runs (project_id, created_at DESC) WHERE status = 'queued';
DROP INDEX runs_queued_by_project;
