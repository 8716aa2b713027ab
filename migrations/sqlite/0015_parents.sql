-- depends: 0013_quotas
-- Parent references (SQLite): a transcript or an artifact may name the record it
-- belongs to (collection, id); both NULL when it names none. Deleting that record
-- refuses or cascades (storage/sqlite/record_children.py); CheckIntegrity reports
-- children whose record is gone (storage/sqlite/parent_checks.py).

ALTER TABLE transcripts ADD COLUMN parent_collection TEXT NULL;
ALTER TABLE transcripts ADD COLUMN parent_id TEXT NULL;
ALTER TABLE artifacts ADD COLUMN parent_collection TEXT NULL;
ALTER TABLE artifacts ADD COLUMN parent_id TEXT NULL;

-- A record's children (the delete's check, the integrity check) and
-- ListTranscripts / ListArtifacts by parent, each in its listing's order. Partial:
-- children are few among all rows, and `parent_id = ?` implies the WHERE.
CREATE INDEX transcripts_parent ON transcripts (namespace, parent_collection, parent_id, create_time, id)
    WHERE parent_id IS NOT NULL;
CREATE INDEX artifacts_parent ON artifacts (namespace, parent_collection, parent_id, id)
    WHERE parent_id IS NOT NULL;
