-- Undo 0006_record_indexes, with the records_f_* indexes the server built.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN
        SELECT c.relname FROM pg_class AS c
        JOIN pg_index AS i ON i.indexrelid = c.oid
        WHERE i.indrelid = 'records'::regclass AND c.relname LIKE 'records\_f\_%'
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', name);
    END LOOP;
END $$;
DROP TABLE IF EXISTS record_indexes;
