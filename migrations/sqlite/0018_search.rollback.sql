DROP TRIGGER IF EXISTS artifacts_search_delete;
DROP TRIGGER IF EXISTS artifacts_search_insert;
DROP TRIGGER IF EXISTS artifact_search_fts_update;
DROP TRIGGER IF EXISTS artifact_search_fts_delete;
DROP TRIGGER IF EXISTS artifact_search_fts_insert;
DROP TABLE IF EXISTS artifact_search_fts;
DROP TABLE IF EXISTS artifact_search;
