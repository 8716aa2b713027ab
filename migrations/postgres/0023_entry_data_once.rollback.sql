-- Undo 0023_entry_data_once: every entry with a wire tail gets its `data` back as
-- jsonb, decoded from the tail's Entry.data field (a google.protobuf.Struct) by
-- these session-local functions. Wire format:
-- https://protobuf.dev/programming-guides/encoding/ (storage/entry_wire.py).
CREATE FUNCTION pg_temp.strata_read_varint(b bytea, at int, OUT value bigint, OUT next int)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    byte int;
    shift int := 0;
BEGIN
    value := 0;
    LOOP
        byte := get_byte(b, at);
        at := at + 1;
        value := value | ((byte & 127)::bigint << shift);
        EXIT WHEN byte < 128;
        shift := shift + 7;
    END LOOP;
    next := at;
END
$$;

-- A google.protobuf.Value: null (1), number (2, a little-endian double), string (3),
-- bool (4), struct (5), list (6).
CREATE FUNCTION pg_temp.strata_value(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    tag int := get_byte(b, 0);
    v record;
    bits bigint := 0;
    e int;
    m bigint;
    x float8;
BEGIN
    IF tag = 8 THEN
        RETURN 'null'::jsonb;
    ELSIF tag = 17 THEN
        FOR i IN REVERSE 7..0 LOOP
            bits := (bits << 8) | get_byte(b, 1 + i);
        END LOOP;
        e := ((bits >> 52) & 2047)::int;
        m := bits & 4503599627370495;
        -- (2^52 + mantissa) * 2^(exponent - 1075), exact (subnormals: no 2^52).
        x := (m + CASE WHEN e > 0 THEN 4503599627370496 ELSE 0 END)::float8
             * (2::float8 ^ (greatest(e, 1) - 1075));
        RETURN to_jsonb(CASE WHEN bits < 0 THEN -x ELSE x END);
    ELSIF tag = 32 THEN
        RETURN to_jsonb(get_byte(b, 1) <> 0);
    END IF;
    v := pg_temp.strata_read_varint(b, 1);
    IF tag = 26 THEN
        RETURN to_jsonb(convert_from(substring(b FROM v.next + 1 FOR v.value::int), 'UTF8'));
    ELSIF tag = 42 THEN
        RETURN pg_temp.strata_struct(substring(b FROM v.next + 1 FOR v.value::int));
    ELSIF tag = 50 THEN
        RETURN pg_temp.strata_list(substring(b FROM v.next + 1 FOR v.value::int));
    END IF;
    RAISE EXCEPTION 'not a google.protobuf.Value: tag %', tag;
END
$$;

-- A google.protobuf.Struct: map entries (1), each a key (1) and a Value (2).
CREATE FUNCTION pg_temp.strata_struct(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    result jsonb := '{}'::jsonb;
    at int := 0;
    stop int;
    v record;
    key text;
    value jsonb;
    tag int;
BEGIN
    WHILE at < length(b) LOOP
        v := pg_temp.strata_read_varint(b, at + 1);
        at := v.next;
        stop := at + v.value::int;
        key := '';
        value := 'null'::jsonb;
        WHILE at < stop LOOP
            tag := get_byte(b, at);
            v := pg_temp.strata_read_varint(b, at + 1);
            IF tag = 10 THEN
                key := convert_from(substring(b FROM v.next + 1 FOR v.value::int), 'UTF8');
            ELSE
                value := pg_temp.strata_value(substring(b FROM v.next + 1 FOR v.value::int));
            END IF;
            at := v.next + v.value::int;
        END LOOP;
        result := result || jsonb_build_object(key, value);
    END LOOP;
    RETURN result;
END
$$;

-- A google.protobuf.ListValue: Values (1).
CREATE FUNCTION pg_temp.strata_list(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    result jsonb := '[]'::jsonb;
    at int := 0;
    v record;
BEGIN
    WHILE at < length(b) LOOP
        v := pg_temp.strata_read_varint(b, at + 1);
        result := result || jsonb_build_array(
            pg_temp.strata_value(substring(b FROM v.next + 1 FOR v.value::int)));
        at := v.next + v.value::int;
    END LOOP;
    RETURN result;
END
$$;

-- The tail: Entry.data (4, when the entry has data), then create_time (5).
UPDATE transcript_entries
SET data = (SELECT pg_temp.strata_struct(substring(wire_tail FROM v.next + 1 FOR v.value::int))
            FROM pg_temp.strata_read_varint(wire_tail, 1) AS v)
WHERE data IS NULL AND wire_tail IS NOT NULL AND get_byte(wire_tail, 0) = 34;

DROP FUNCTION pg_temp.strata_list(bytea);
DROP FUNCTION pg_temp.strata_struct(bytea);
DROP FUNCTION pg_temp.strata_value(bytea);
DROP FUNCTION pg_temp.strata_read_varint(bytea, int);
