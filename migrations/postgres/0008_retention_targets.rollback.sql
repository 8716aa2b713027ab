DROP INDEX IF EXISTS artifacts_kind_age;
DROP INDEX IF EXISTS transcripts_sealed;
DELETE FROM retention_policies WHERE target NOT IN ('records', 'completed_jobs', 'dead_jobs');
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN ('records', 'completed_jobs', 'dead_jobs')
);
