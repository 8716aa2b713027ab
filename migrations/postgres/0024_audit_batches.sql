-- depends: 0023_entry_data_once
-- One audit row per purge batch (issue 23; docs/operations.md, "Audit log").
-- Expiry and record retention used to write one audit row per removed record,
-- and each row paid the heap, the primary key and four indexes: a per-record
-- audit trail alone cost many times the DELETE it recorded. Now each batch of
-- a collection writes one row: `entity_id` is the collection's prefix
-- (`<collection>/`, so the change feed's range scan of a collection and the
-- entity index still find it), `entity_ids` lists every removed record's
-- entity id and `entity_versions` each one's last version, in the same order.
-- Both are NULL on every other row (a bit of the null bitmap; adding nullable
-- columns without a default rewrites no rows). Readers expand a batch row:
-- WatchRecords sends one delete per id, ListAuditEntries(entity_id) finds the
-- row for any of its ids (through audit_log_entity on the prefix), exports
-- carry the lists.
ALTER TABLE audit_log ADD COLUMN entity_ids text[] COLLATE "C" NULL;
ALTER TABLE audit_log ADD COLUMN entity_versions bigint[] NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_batch_lists CHECK (
    (entity_ids IS NULL) = (entity_versions IS NULL)
    AND cardinality(entity_ids) = cardinality(entity_versions)
);

-- The change feed asks, of an entry whose record exists now, whether a later batch
-- row of its collection lists it (the record was removed and created again since):
-- this index holds only batch rows, one entry per batch, in the feed's order, so
-- the question reads only the batch rows after the entry.
CREATE INDEX audit_log_batches ON audit_log (namespace, entity_id, xact, seq)
WHERE entity_ids IS NOT NULL;
