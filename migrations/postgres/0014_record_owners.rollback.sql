DROP INDEX IF EXISTS audit_log_record_deletes;
CREATE INDEX audit_log_record_deletes ON audit_log (namespace, entity_id, seq)
WHERE entity = 'record' AND action IN ('delete', 'expire', 'retention');
DROP INDEX IF EXISTS records_owner;
ALTER TABLE records DROP COLUMN IF EXISTS owner;
