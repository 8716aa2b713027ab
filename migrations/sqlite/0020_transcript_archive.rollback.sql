-- Undo 0020_transcript_archive. Archived transcripts must be restored first: their
-- entries are only in their segments, which this forgets.
CREATE TABLE retention_policies_0016 (
    namespace TEXT NOT NULL,
    target TEXT NOT NULL CHECK (
        target IN (
            'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
            'audit_log', 'request_log'
        )
    ),
    selector TEXT NOT NULL,
    max_age_us INTEGER NOT NULL CHECK (max_age_us > 0),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, target, selector)
);
INSERT INTO retention_policies_0016
    SELECT * FROM retention_policies WHERE target <> 'archive_transcripts';
DROP TABLE retention_policies;
ALTER TABLE retention_policies_0016 RENAME TO retention_policies;
DROP TRIGGER IF EXISTS archived_entries_fts_delete;
DROP TABLE IF EXISTS archived_entries_fts;
DROP TABLE IF EXISTS archived_entries;
DROP TABLE IF EXISTS transcript_segments;
ALTER TABLE transcripts DROP COLUMN archive_time;
