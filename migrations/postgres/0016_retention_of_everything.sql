-- depends: 0013_quotas
-- Retention of everything (core/retention_rules.py): two more targets for
-- retention_policies, the audit log and the idempotency request log; the
-- indexes their cleanups scan by age (none on transcripts' update_time: it
-- would cost every append); and the scheduled cleanup passes every replica
-- reads back (GetCleanupStatus).
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN (
        'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
        'audit_log', 'request_log'
    )
);

-- Audit entries and request log entries by age.
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX request_log_time ON request_log (create_time);

-- One row per scheduled cleanup pass, newest kept (core.retention_rules.KEEP_RUNS).
-- While a pass runs, end_time is NULL and phase/done/total say how far it is.
CREATE TABLE cleanup_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    replica text NOT NULL,
    start_time timestamptz NOT NULL,
    end_time timestamptz NULL,
    steps jsonb NOT NULL,
    phase text NOT NULL DEFAULT '',
    done bigint NOT NULL DEFAULT 0,
    total bigint NOT NULL DEFAULT 0,
    error text NULL
);
