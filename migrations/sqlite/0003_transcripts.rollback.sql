-- Undo 0003_transcripts: drop everything it created.

DROP TABLE IF EXISTS transcript_entries_fts;
DROP INDEX IF EXISTS transcript_entries_offset;
DROP TABLE IF EXISTS transcript_entries;
DROP INDEX IF EXISTS transcripts_owner;
DROP INDEX IF EXISTS transcripts_list;
DROP TABLE IF EXISTS transcripts;
