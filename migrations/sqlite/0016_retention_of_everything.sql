-- depends: 0013_quotas
-- Retention of everything (core/retention_rules.py): two more targets for
-- retention_policies, the audit log and the idempotency request log (SQLite
-- changes a CHECK only by rebuilding the table); the indexes their cleanups
-- scan by age (none on transcripts' update_time: it would cost every append);
-- and the scheduled cleanup passes every replica reads back (GetCleanupStatus).
CREATE TABLE retention_policies_0016 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN (
            'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
            'audit_log', 'request_log'
        )
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0016 SELECT * FROM retention_policies;
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0016 RENAME TO retention_policies;

-- Audit entries and request log entries by age.
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX request_log_time ON request_log (create_time);

-- One row per scheduled cleanup pass, newest kept (core.retention_rules.KEEP_RUNS).
-- While a pass runs, end_time is NULL and phase/done/total say how far it is.
CREATE TABLE cleanup_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    replica TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER NULL,
    steps TEXT NOT NULL CHECK (json_valid(steps)),
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    error TEXT NULL
);
