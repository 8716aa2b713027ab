"""The SQLite storage adapter (embedded shape): see `database.SqliteDatabase`.

    db = await SqliteDatabase.open("data/strata.db", max_record_bytes=1 << 20)

Modules: `connection` (writer + reader pool, transactions), `errors` (sqlite3 ->
domain errors), `records` (reads), `commit` (the write path and expiry purge),
`dialect` (the filter compiler's SQLite half).
"""

from strata_server.storage.sqlite.database import SqliteDatabase

__all__ = ["SqliteDatabase"]
