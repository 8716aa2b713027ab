DROP TRIGGER IF EXISTS artifacts_search_insert ON artifacts;
DROP FUNCTION IF EXISTS strata_artifact_search_insert();
DROP TABLE IF EXISTS artifact_search;
DROP FUNCTION IF EXISTS strata_artifact_labels_text(jsonb);
