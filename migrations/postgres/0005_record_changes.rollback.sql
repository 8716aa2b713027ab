DROP INDEX audit_log_changes;
ALTER TABLE audit_log DROP COLUMN xact;
