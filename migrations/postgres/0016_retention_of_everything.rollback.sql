DROP TABLE IF EXISTS cleanup_runs;
DROP INDEX IF EXISTS request_log_time;
DROP INDEX IF EXISTS audit_log_time;
DELETE FROM retention_policies WHERE target IN ('audit_log', 'request_log');
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN ('records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts')
);
