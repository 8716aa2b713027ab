-- depends: 0008_retention_targets
-- Each entry's protobuf wire form, stored when it is appended, so that a
-- ReadTranscript batch is one string_agg of stored bytes (core/entry_wire.py says
-- what the bytes are). NULL for entries appended before this migration: reads
-- encode those in the server.
ALTER TABLE transcript_entries ADD COLUMN wire bytea NULL;

-- `value` (>= 0) as a protobuf varint, byte for byte what core.entry_wire.varint
-- gives: 7 bits a byte, low bits first, the high bit set on every byte but the
-- last. The append statement uses it for each entry's seq and length, which only
-- it knows. Written without a loop (nine candidate bytes, cut to the length the
-- value needs) and not STRICT, so that PostgreSQL inlines it: called as a SQL
-- function instead, it cost ~1 ms per append statement.
CREATE FUNCTION strata_varint(value bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN substring(
        set_byte('\x00'::bytea, 0, ((value) & 127 | CASE WHEN value >> 7 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 7) & 127 | CASE WHEN value >> 14 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 14) & 127 | CASE WHEN value >> 21 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 21) & 127 | CASE WHEN value >> 28 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 28) & 127 | CASE WHEN value >> 35 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 35) & 127 | CASE WHEN value >> 42 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 42) & 127 | CASE WHEN value >> 49 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 49) & 127 | CASE WHEN value >> 56 > 0 THEN 128 ELSE 0 END)::int)
        || set_byte('\x00'::bytea, 0, ((value >> 56) & 127)::int)
        FROM 1 FOR CASE
            WHEN value >> 7 = 0 THEN 1
            WHEN value >> 14 = 0 THEN 2
            WHEN value >> 21 = 0 THEN 3
            WHEN value >> 28 = 0 THEN 4
            WHEN value >> 35 = 0 THEN 5
            WHEN value >> 42 = 0 THEN 6
            WHEN value >> 49 = 0 THEN 7
            WHEN value >> 56 = 0 THEN 8
            ELSE 9 END
    );
