"""The PostgreSQL storage adapters (production shape): psycopg 3 and psycopg_pool.

`open_postgres(dsn, max_record_bytes=...)` returns the `Storage` of one pool: one
adapter per port. Modules: `pool` (the pool, driver-error translation, `Runner`),
`backend` (opening, the lifecycle), `dialect` (this dialect of the shared filter
compiler), then one module per port, named for it, with its statements beside it
(`*_queries`, `queries` for records).
"""

from strata_server.storage.postgres.backend import open_postgres

__all__ = ["open_postgres"]
