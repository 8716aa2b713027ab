-- depends: 0002_queue
-- WatchRecords reads record changes from the audit log in commit order. A
-- sequence value is taken at insert time, not at commit, so `seq` alone can be
-- read out of order; every entry also records its transaction id, and a reader
-- takes only entries of transactions older than every running one
-- (pg_snapshot_xmin), ordered by (xact, seq).
ALTER TABLE audit_log ADD COLUMN xact xid8 NOT NULL DEFAULT pg_current_xact_id();

CREATE INDEX audit_log_changes ON audit_log (namespace, xact, seq);
