-- Undo 0001_records: drop everything it created (triggers go with their table).

DROP INDEX IF EXISTS audit_log_entity;
DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS request_log;
DROP TRIGGER IF EXISTS records_fts_update;
DROP TRIGGER IF EXISTS records_fts_delete;
DROP TRIGGER IF EXISTS records_fts_insert;
DROP TABLE IF EXISTS records_fts;
DROP INDEX IF EXISTS records_expire_time;
DROP TABLE IF EXISTS records;
