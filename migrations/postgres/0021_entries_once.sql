-- depends: 0020_transcript_archive
-- Each entry's content stored once (docs/transcripts.md, "How entries are stored").
-- Since 0009 an entry kept its content twice: as text (searched, shown in snippets,
-- exported) and inside `wire`, its protobuf wire form. The wire form is now kept as
-- the bytes around the content: `wire_head` (Batch.entries' tag and length, seq,
-- role, the content's tag and length) and `wire_tail` (data, create_time), so a
-- batch is still one string_agg of stored bytes, of
-- `wire_head || convert_to(content, 'UTF8') || wire_tail` (storage/entry_wire.py:
-- stored_parts). Entries appended before 0009 have neither (reads encode them from
-- their columns, as they did). Existing wire forms are cut here: the head is as long
-- as the bytes before the content, counted from the fields that precede it, and the
-- old column goes (set to NULL in the same UPDATE, so the rows' new versions do not
-- carry it). Content larger than the TOAST threshold is compressed with lz4, which
-- reads back faster than the default pglz.
ALTER TABLE transcript_entries ADD COLUMN wire_head bytea NULL, ADD COLUMN wire_tail bytea NULL;

UPDATE transcript_entries AS e
SET wire_head = substring(e.wire FROM 1 FOR p.head),
    wire_tail = substring(e.wire FROM p.head + octet_length(convert_to(e.content, 'UTF8')) + 1),
    wire = NULL
FROM (
    SELECT namespace, transcript_id, seq,
           -- Batch.entries' tag, the entry's length (a varint: its bytes up to the
           -- first below 128), Entry.seq's tag and value.
           1 + CASE WHEN get_byte(wire, 1) < 128 THEN 1 WHEN get_byte(wire, 2) < 128 THEN 2
                    WHEN get_byte(wire, 3) < 128 THEN 3 WHEN get_byte(wire, 4) < 128 THEN 4
                    ELSE 5 END
             + 1 + octet_length(strata_varint(seq))
             + CASE WHEN role = '' THEN 0
                    ELSE 1 + octet_length(strata_varint(octet_length(convert_to(role, 'UTF8'))))
                         + octet_length(convert_to(role, 'UTF8')) END
             + CASE WHEN content = '' THEN 0
                    ELSE 1 + octet_length(strata_varint(octet_length(convert_to(content, 'UTF8'))))
                    END AS head
    FROM transcript_entries
    WHERE wire IS NOT NULL
) AS p
WHERE e.namespace = p.namespace AND e.transcript_id = p.transcript_id AND e.seq = p.seq;

ALTER TABLE transcript_entries DROP COLUMN wire;
ALTER TABLE transcript_entries ALTER COLUMN content SET COMPRESSION lz4;
