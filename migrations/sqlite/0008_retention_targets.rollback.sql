DROP INDEX IF EXISTS artifacts_kind_age;
DROP INDEX IF EXISTS transcripts_sealed;
CREATE TABLE retention_policies_0007 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (target IN ('records', 'completed_jobs', 'dead_jobs')),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0007
    SELECT * FROM retention_policies WHERE target IN ('records', 'completed_jobs', 'dead_jobs');
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0007 RENAME TO retention_policies;
