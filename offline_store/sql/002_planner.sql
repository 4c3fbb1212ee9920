-- 002: no nested-loop joins in this database's sessions.
-- Feast's point-in-time SQL (get_historical_features) joins CTEs whose row estimates are 1,
-- so the planner picks nested loops over them: quadratic in the entity rows (500 rows of a
-- 5-minute grid took over 4 minutes; with nested loops off, 1.5 s, and 5000 rows 15 s).
-- Hash and merge joins serve every query of this project well. Best effort: a role that does
-- not own the database keeps the default (and slower training sets), with a notice.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET enable_nestloop = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'enable_nestloop stays on: % does not own the database', current_user;
END
$$;
