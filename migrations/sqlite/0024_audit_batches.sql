-- depends: 0023_entry_data_once
-- One audit row per purge batch (issue 23; docs/operations.md, "Audit log").
-- Expiry and record retention write one row per batch of a collection instead of
-- one per removed record: `entity_id` is the collection's prefix (`<collection>/`,
-- so the change feed's range scan of a collection and the entity index still find
-- it), `entity_ids` a JSON array of every removed record's entity id and
-- `entity_versions` a JSON array of each one's last version, in the same order;
-- both NULL on every other row. Readers expand a batch row (WatchRecords sends one
-- delete per id, ListAuditEntries(entity_id) finds the row for any of its ids,
-- exports carry the lists).
ALTER TABLE audit_log ADD COLUMN entity_ids TEXT NULL
    CHECK (entity_ids IS NULL OR json_type(entity_ids) = 'array');
ALTER TABLE audit_log ADD COLUMN entity_versions TEXT NULL
    CHECK (entity_versions IS NULL OR json_type(entity_versions) = 'array');

-- The change feed asks, of an entry whose record exists now, whether a later batch
-- row of its collection lists it (the record was removed and created again since):
-- this index holds only batch rows, one entry per batch, so the question reads only
-- the batch rows after the entry.
CREATE INDEX audit_log_batches ON audit_log (namespace, entity_id, seq)
WHERE entity_ids IS NOT NULL;
