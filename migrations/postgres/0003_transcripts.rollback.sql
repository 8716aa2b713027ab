-- Undo 0003_transcripts: drop everything it created (indexes go with their tables).

DROP TABLE IF EXISTS transcript_entries;
DROP TABLE IF EXISTS transcripts;
