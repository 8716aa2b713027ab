-- Undo 0002_queue: drop everything it created.

DROP INDEX IF EXISTS lease_expiries_time;
DROP TABLE IF EXISTS lease_expiries;
DROP TABLE IF EXISTS queue_settings;
DROP INDEX IF EXISTS jobs_completed;
DROP INDEX IF EXISTS jobs_unique_key;
DROP INDEX IF EXISTS jobs_list;
DROP INDEX IF EXISTS jobs_leased;
DROP INDEX IF EXISTS jobs_ready;
DROP TABLE IF EXISTS jobs;
