-- The event log's writers, trimmed (issue 17's profile: three events a job, each
-- a trigger calling a function that ran two statements and fed two btrees).
--
-- An event is one statement: its number and its row together. A run's status
-- change writes it from the trigger itself, without a nested function call.
-- The retention sweep's scan by age uses a BRIN index: events arrive in time
-- order, so a block range summary finds the old ones, and an insert no longer
-- pays for a btree entry.
-- (body: migrations/functions/stewrd_log_event.sql)

-- (body: migrations/functions/stewrd_log_run_change.sql)

DROP INDEX session_events_by_age;
CREATE INDEX session_events_by_age ON session_events USING brin (created_at);
