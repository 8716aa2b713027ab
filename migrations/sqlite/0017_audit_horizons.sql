-- depends: 0016_retention_of_everything
-- How far each namespace's audit log has been purged (services/cleanup_service.py):
-- the highest seq a purge removed and the newest time among the removed entries,
-- raised in the transaction of each purge batch. WatchRecords refuses a cursor
-- below it (CURSOR_EXPIRED) instead of resuming past changes it can no longer read.
CREATE TABLE audit_horizons (
    namespace TEXT NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL
) WITHOUT ROWID;
