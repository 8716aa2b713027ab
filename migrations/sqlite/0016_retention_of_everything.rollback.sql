DROP TABLE IF EXISTS cleanup_runs;
DROP INDEX IF EXISTS request_log_time;
DROP INDEX IF EXISTS audit_log_time;
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
INSERT INTO retention_policies_0008
    SELECT * FROM retention_policies WHERE target NOT IN ('audit_log', 'request_log');
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0008 RENAME TO retention_policies;
