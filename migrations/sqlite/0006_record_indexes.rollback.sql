-- Undo 0006_record_indexes. The records_f_* indexes the server built stay (a
-- migration script cannot name them); they only cost space and can be dropped
-- by hand: SELECT name FROM sqlite_master WHERE name LIKE 'records_f_%'.
DROP TABLE IF EXISTS record_indexes;
