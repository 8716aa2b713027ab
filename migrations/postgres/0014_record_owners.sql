-- depends: 0013_quotas
-- Records gain an optional owner, as transcripts and artifacts have, so usage,
-- export and cleanup can be asked for one owner across every kind. NULL means
-- none (the API's empty owner), so the partial index below holds only owned
-- records: an unowned write pays nothing for it. `owner = $1` implies
-- `owner IS NOT NULL`, so both a filter within a collection and an owner's
-- records over every collection (usage, export, cleanup) use it. Adding a
-- nullable column without a default rewrites no rows.
ALTER TABLE records ADD COLUMN owner text COLLATE "C" NULL;

CREATE INDEX records_owner ON records (namespace, owner, collection) WHERE owner IS NOT NULL;

-- A cleanup of one owner deletes records with the audit action 'owner_cleanup',
-- one more action after which a record no longer exists: the partial index of
-- deletes (0010) lists them all, in core/change_cursors.DELETE_ACTIONS' order,
-- so WatchRecords' lookup of later deletes keeps using it.
DROP INDEX IF EXISTS audit_log_record_deletes;
CREATE INDEX audit_log_record_deletes ON audit_log (namespace, entity_id, seq)
WHERE entity = 'record' AND action IN ('delete', 'expire', 'retention', 'owner_cleanup');
