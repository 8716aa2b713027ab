DROP FUNCTION IF EXISTS strata_varint(bigint);
ALTER TABLE transcript_entries DROP COLUMN IF EXISTS wire;
