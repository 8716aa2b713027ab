-- depends: 0020_transcript_archive
-- The archive tier of artifacts (docs/artifacts.md, "Tiers"). An archived artifact
-- keeps its row, with archive_time set; on S3 its blob moves to the colder
-- storage class unless a hot artifact still names it. Retention gains the target
-- that archives artifacts, by kind like the artifacts target.
ALTER TABLE artifacts ADD COLUMN archive_time INTEGER NULL;
-- The archive step's walk: the hot artifacts of a namespace by age.
CREATE INDEX artifacts_hot_age ON artifacts (namespace, create_time) WHERE archive_time IS NULL;

CREATE TABLE retention_policies_0022 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN (
            'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
            'audit_log', 'request_log', 'archive_transcripts', 'archive_artifacts'
        )
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0022 SELECT * FROM retention_policies;
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0022 RENAME TO retention_policies;
