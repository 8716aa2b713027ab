-- depends: 0007_retention 0003_transcripts 0004_artifacts
-- Retention of sealed transcripts and of artifacts by kind (core/retention.py):
-- two more targets for retention_policies (SQLite changes a CHECK only by
-- rebuilding the table), and the indexes their cleanups scan by age.
CREATE TABLE retention_policies_0008 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN ('records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts')
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0008 SELECT * FROM retention_policies;
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0008 RENAME TO retention_policies;

-- Sealed transcripts of a namespace by seal time.
CREATE INDEX transcripts_sealed ON transcripts (namespace, seal_time) WHERE seal_time IS NOT NULL;
-- Artifacts of a namespace and kind by age.
CREATE INDEX artifacts_kind_age ON artifacts (namespace, kind, create_time);
