-- depends: 0007_retention 0003_transcripts 0004_artifacts
-- Retention of sealed transcripts and of artifacts by kind (core/retention.py):
-- two more targets for retention_policies, and the indexes their cleanups scan
-- by age.
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN ('records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts')
);

-- Sealed transcripts of a namespace by seal time.
CREATE INDEX transcripts_sealed ON transcripts (namespace, seal_time) WHERE seal_time IS NOT NULL;
-- Artifacts of a namespace and kind by age.
CREATE INDEX artifacts_kind_age ON artifacts (namespace, kind, create_time);
