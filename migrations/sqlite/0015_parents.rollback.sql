-- Undo 0015_parents.
DROP INDEX IF EXISTS artifacts_parent;
DROP INDEX IF EXISTS transcripts_parent;
ALTER TABLE artifacts DROP COLUMN parent_id;
ALTER TABLE artifacts DROP COLUMN parent_collection;
ALTER TABLE transcripts DROP COLUMN parent_id;
ALTER TABLE transcripts DROP COLUMN parent_collection;
