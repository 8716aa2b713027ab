"""The SQLite storage adapters (embedded shape): one file in WAL mode.

    storage = await open_sqlite("data/strata.db", max_record_bytes=1 << 20)

Modules: `connection` (writer + reader pool, transactions), `errors` (sqlite3 ->
domain errors), `backend` (opening, the lifecycle), `dialect` (the filter
compiler's SQLite half), then one module per port, named for it, with its
statements beside it (`*_queries`).
"""

from strata_server.storage.sqlite.backend import open_sqlite

__all__ = ["open_sqlite"]
