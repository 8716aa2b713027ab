"""The PostgreSQL storage adapter (production shape): psycopg 3 and psycopg_pool.

`PostgresDatabase.open(dsn, max_record_bytes=...)` (a classmethod) returns an object
that satisfies `storage.ports.Database`. Modules: `pool` (pool creation, driver-error
translation), `queries` (all SQL), `records` (reads), `commit` (the write path and
purge), `database` (the port), `dialect` (this dialect of the shared filter compiler).
"""

from strata_server.storage.postgres.database import PostgresDatabase

__all__ = ["PostgresDatabase"]
