-- Undo 0020_transcript_archive. Archived transcripts must be restored first: their
-- entries are only in their segments, which this forgets.
DELETE FROM retention_policies WHERE target = 'archive_transcripts';
ALTER TABLE retention_policies DROP CONSTRAINT retention_policies_target_check;
ALTER TABLE retention_policies ADD CONSTRAINT retention_policies_target_check CHECK (
    target IN (
        'records', 'completed_jobs', 'dead_jobs', 'sealed_transcripts', 'artifacts',
        'audit_log', 'request_log'
    )
);
DROP TABLE IF EXISTS archived_entries;
DROP TABLE IF EXISTS transcript_segments;
ALTER TABLE transcripts DROP COLUMN archive_time;
