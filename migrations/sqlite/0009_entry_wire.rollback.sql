ALTER TABLE transcript_entries DROP COLUMN wire;
