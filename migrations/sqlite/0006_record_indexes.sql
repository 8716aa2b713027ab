-- depends: 0001_records
-- Secondary indexes declared through AdminService.CreateIndex: one row per
-- (namespace, collection, data path). The database index serving a path
-- (records_f_*) is created and dropped by the server, not by this migration.
CREATE TABLE record_indexes (
    namespace TEXT NOT NULL,
    collection TEXT NOT NULL,
    path TEXT NOT NULL,          -- the data keys joined by '.', e.g. customer.id
    index_name TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (namespace, collection, path)
);
