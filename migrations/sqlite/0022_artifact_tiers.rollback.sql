-- Undo 0022_artifact_tiers. Archived artifacts become hot in the rows; blobs moved
-- to the colder S3 storage class stay there (reads are unchanged).
CREATE TABLE retention_policies_0020 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN (
            'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
            'audit_log', 'request_log', 'archive_transcripts'
        )
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0020
    SELECT * FROM retention_policies WHERE target <> 'archive_artifacts';
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0020 RENAME TO retention_policies;
DROP INDEX IF EXISTS artifacts_hot_age;
ALTER TABLE artifacts DROP COLUMN archive_time;
