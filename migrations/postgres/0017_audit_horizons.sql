-- depends: 0016_retention_of_everything
-- How far each namespace's audit log has been purged (services/cleanup_service.py):
-- the highest (xact, seq) a purge removed, in the feed's order
-- (storage/postgres/changes.py), and the newest time among the removed entries,
-- raised in the statement of each purge batch. WatchRecords refuses a cursor below
-- it (CURSOR_EXPIRED) instead of resuming past changes it can no longer read.
CREATE TABLE audit_horizons (
    namespace text COLLATE "C" NOT NULL PRIMARY KEY,
    xact xid8 NOT NULL,
    seq bigint NOT NULL,
    time timestamptz NOT NULL
);
