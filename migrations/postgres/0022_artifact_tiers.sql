-- depends: 0020_transcript_archive
-- The archive tier of artifacts (docs/artifacts.md, "Tiers"). An archived artifact
-- keeps its row, with archive_time set; on S3 its blob moves to the colder
-- storage class unless a hot artifact still names it. Retention gains the target
-- that archives artifacts, by kind like the artifacts target.
ALTER TABLE artifacts ADD COLUMN archive_time timestamptz NULL;
-- The archive step's walk: the hot artifacts of a namespace by age.
CREATE INDEX artifacts_hot_age ON artifacts (namespace, create_time) WHERE archive_time IS NULL;

ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN (
        'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
        'audit_log', 'request_log', 'archive_transcripts', 'archive_artifacts'
    )
);
