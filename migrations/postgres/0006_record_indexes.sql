-- depends: 0001_records
-- Secondary indexes declared through AdminService.CreateIndex: one row per
-- (namespace, collection, data path). The database index serving a path
-- (records_f_*) is built by the server with CREATE INDEX CONCURRENTLY, which
-- cannot run inside a migration's transaction.
CREATE TABLE record_indexes (
    namespace text NOT NULL,
    collection text NOT NULL,
    path text NOT NULL,          -- the data keys joined by '.', e.g. customer.id
    index_name text NOT NULL,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (namespace, collection, path)
);
