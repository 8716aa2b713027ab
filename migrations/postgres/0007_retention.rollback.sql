DROP INDEX IF EXISTS jobs_dead;
DROP TABLE IF EXISTS retention_policies;
