-- Undo 0023_entry_data_once: every entry with a wire tail gets its `data` back as
-- JSON, decoded from the tail by strata_entry_data, a function the migration runner
-- registers on its SQLite connections (storage/migrations.py: sqlite_functions;
-- SQLite has no procedural language to decode a protobuf Struct in).
UPDATE transcript_entries SET data = strata_entry_data(wire_tail)
WHERE data IS NULL AND wire_tail IS NOT NULL;
