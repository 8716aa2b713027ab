-- depends: 0020_transcript_archive
-- Each entry's content stored once (docs/transcripts.md, "How entries are stored").
-- Since 0009 an entry kept its content twice: as text (searched through the
-- external-content FTS5 index, shown in snippets, exported) and inside `wire`, its
-- protobuf wire form. The wire form is now kept as the bytes around the content:
-- `wire_head` (Batch.entries' tag and length, seq, role, the content's tag and
-- length) and `wire_tail` (data, create_time); a read joins
-- `wire_head || CAST(content AS BLOB) || wire_tail` (storage/entry_wire.py:
-- stored_parts). Entries appended before 0009 have neither (reads encode them from
-- their columns, as they did). Existing wire forms are cut here: the head is as long
-- as the bytes before the content, counted from the fields that precede it (a
-- varint's length from its value; the entry's own length from the whole's).
ALTER TABLE transcript_entries ADD COLUMN wire_head BLOB NULL;
ALTER TABLE transcript_entries ADD COLUMN wire_tail BLOB NULL;

UPDATE transcript_entries
SET wire_head = substr(wire, 1, head), wire_tail = substr(wire, head + length(CAST(content AS BLOB)) + 1),
    wire = NULL
FROM (
    SELECT rowid AS id,
           1 + CASE WHEN length(wire) - 2 < 128 THEN 1 WHEN length(wire) - 3 < 16384 THEN 2
                    WHEN length(wire) - 4 < 2097152 THEN 3 ELSE 4 END
             + 1 + CASE WHEN seq < 128 THEN 1 WHEN seq < 16384 THEN 2 WHEN seq < 2097152 THEN 3
                        WHEN seq < 268435456 THEN 4 WHEN seq < 34359738368 THEN 5 ELSE 6 END
             + CASE WHEN role = '' THEN 0
                    ELSE 1 + CASE WHEN length(CAST(role AS BLOB)) < 128 THEN 1 ELSE 2 END
                         + length(CAST(role AS BLOB)) END
             + CASE WHEN content = '' THEN 0
                    ELSE 1 + CASE WHEN length(CAST(content AS BLOB)) < 128 THEN 1
                                  WHEN length(CAST(content AS BLOB)) < 16384 THEN 2
                                  WHEN length(CAST(content AS BLOB)) < 2097152 THEN 3 ELSE 4 END
                    END AS head
    FROM transcript_entries
    WHERE wire IS NOT NULL
) AS p
WHERE transcript_entries.rowid = p.id;

ALTER TABLE transcript_entries DROP COLUMN wire;
