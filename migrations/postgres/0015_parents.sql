-- depends: 0013_quotas
-- Parent references (PostgreSQL): a transcript or an artifact may name the record
-- it belongs to (collection, id); both NULL when it names none. Deleting that
-- record refuses or cascades (storage/postgres/record_children.py); CheckIntegrity
-- reports children whose record is gone (storage/postgres/parent_checks.py).
-- Adding NULL columns rewrites no table.

ALTER TABLE transcripts
    ADD COLUMN parent_collection text COLLATE "C" NULL,
    ADD COLUMN parent_id text COLLATE "C" NULL;
ALTER TABLE artifacts
    ADD COLUMN parent_collection text COLLATE "C" NULL,
    ADD COLUMN parent_id text COLLATE "C" NULL;

-- A record's children (the delete's check, the integrity check) and
-- ListTranscripts / ListArtifacts by parent, each in its listing's order. Partial:
-- children are few among all rows, and `parent_id = $1` implies the WHERE.
CREATE INDEX transcripts_parent ON transcripts (namespace, parent_collection, parent_id, create_time, id)
    WHERE parent_id IS NOT NULL;
CREATE INDEX artifacts_parent ON artifacts (namespace, parent_collection, parent_id, id)
    WHERE parent_id IS NOT NULL;
