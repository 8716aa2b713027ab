-- Undo 0010_record_deletes.
DROP INDEX audit_log_record_deletes;
