-- Undo 0022_artifact_tiers. Archived artifacts become hot in the rows; blobs moved
-- to the colder S3 storage class stay there (reads are unchanged).
DELETE FROM retention_policies WHERE target = 'archive_artifacts';
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN (
        'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
        'audit_log', 'request_log', 'archive_transcripts'
    )
);
DROP INDEX IF EXISTS artifacts_hot_age;
ALTER TABLE artifacts DROP COLUMN archive_time;
