ALTER TABLE transcript_entries ADD COLUMN wire BLOB NULL;
UPDATE transcript_entries
SET wire = CAST(wire_head || CAST(content AS BLOB) || wire_tail AS BLOB), wire_head = NULL,
    wire_tail = NULL
WHERE wire_head IS NOT NULL;
ALTER TABLE transcript_entries DROP COLUMN wire_head;
ALTER TABLE transcript_entries DROP COLUMN wire_tail;
