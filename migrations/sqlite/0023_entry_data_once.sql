-- depends: 0022_artifact_tiers
-- Each entry's data stored once (docs/transcripts.md, "How entries are stored").
-- Since 0009 an entry with data kept it twice: as JSON in `data` and as its
-- protobuf Struct in the wire form, now in `wire_tail` (migration 0021). The tail
-- is what a read sends, so it stays and the column is cleared: readers that want
-- the data as JSON (exports, the archive's exports, the fallbacks) decode it from
-- the tail (storage/entry_wire.py: tail_data). Entries appended before 0009 have
-- no tail and keep their `data`, the one place theirs is stored; so the column
-- stays, NULL (a one-byte record header entry) for every other row.
UPDATE transcript_entries SET data = NULL WHERE wire_tail IS NOT NULL AND data IS NOT NULL;
