ALTER TABLE transcript_entries ALTER COLUMN content SET COMPRESSION default;
ALTER TABLE transcript_entries ADD COLUMN wire bytea NULL;
UPDATE transcript_entries
SET wire = wire_head || convert_to(content, 'UTF8') || wire_tail, wire_head = NULL, wire_tail = NULL
WHERE wire_head IS NOT NULL;
ALTER TABLE transcript_entries DROP COLUMN wire_head, DROP COLUMN wire_tail;
