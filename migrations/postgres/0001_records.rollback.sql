-- Undo 0001_records: drop everything it created (indexes go with their tables).

DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS request_log;
DROP TABLE IF EXISTS records;
