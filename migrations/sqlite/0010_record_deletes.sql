-- depends: 0009_entry_wire
-- WatchRecords sends a create or update of a record deleted since without a
-- record (core/changes.py); whether a later entry deleted it is looked up here,
-- one seek per change, however long the record's history. Deletes are few, so
-- the index is small.
CREATE INDEX audit_log_record_deletes ON audit_log (namespace, entity_id, seq)
WHERE entity = 'record' AND action IN ('delete', 'expire', 'retention');
