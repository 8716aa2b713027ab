"""`SqliteDatabase`: the embedded backend, one SQLite file in WAL mode.

Open it with the classmethod `SqliteDatabase.open(path, max_record_bytes=...)`. The
schema comes from the yoyo migrations in `migrations/sqlite/`, applied before `open`;
for `:memory:` pass their text as `schema_sql` and it runs on the writer first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from strata_server.core.filters import Filter
from strata_server.core.models import (
    Actor,
    ChangeBatch,
    Idempotency,
    ListQuery,
    Page,
    Record,
    RecordRef,
    SearchHit,
    SearchQuery,
    ServerFacts,
    Write,
    WriteResult,
)
from strata_server.core.quotas import explained
from strata_server.storage.sqlite import (
    changes,
    commit,
    records,
)
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.leader import FileLeader
from strata_server.storage.sqlite.quotas import SqliteQuotas
from strata_server.storage.sqlite.retention import SqliteRetention
from strata_server.storage.sqlite.tokens import SqliteTokens

CAPABILITIES = (
    "records",
    "commit",
    "search",
    "ttl",
    "audit",
    "idempotency",
    "queue",
    "transcripts",
    "artifacts",
)

HAS_YOYO_TABLE = (
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_yoyo_migration'"
)
NEWEST_MIGRATION = (
    "SELECT migration_id FROM _yoyo_migration "
    "ORDER BY applied_at_utc DESC, migration_id DESC LIMIT 1"
)
KEEP_SECRET = (
    "INSERT INTO server_secrets (name, value, create_time) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO NOTHING"
)
READ_SECRET = "SELECT value FROM server_secrets WHERE name = ?"


class SqliteDatabase:
    """The `storage.ports.Database` port over SQLite (satisfied structurally)."""

    def __init__(
        self, connections: Connections, *, max_record_bytes: int, path: str | None = None
    ) -> None:
        self._db = connections
        self.connections = connections
        self.quotas = SqliteQuotas(connections)
        self._max_record_bytes = max_record_bytes
        self.retention = SqliteRetention(
            connections, FileLeader(path if path and path != ":memory:" else None)
        )
        self._tokens = SqliteTokens(connections)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        max_record_bytes: int,
        readers: int = 4,
        schema_sql: str | None = None,
    ) -> SqliteDatabase:
        """Connect to the database file at `path` (or `:memory:`).

        `schema_sql`, when given, is run as a script on the writer connection before
        anything else (for `:memory:`, where no migration tool can reach the database).
        Raises Unavailable when the file cannot be opened.
        """
        connections = await Connections.open(path, readers=readers, schema_sql=schema_sql)
        return cls(connections, max_record_bytes=max_record_bytes, path=path)

    @property
    def tokens(self) -> SqliteTokens:
        """The bearer tokens, over the same connections."""
        return self._tokens

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        return await records.get_record(self._db, namespace, collection, id)

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`; missing ids are absent."""
        return await records.batch_get_records(self._db, namespace, collection, ids)

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order` after `query.after` (keyset pagination)."""
        return await records.list_records(self._db, namespace, query)

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""
        return await records.count_records(self._db, namespace, collection, filter)

    async def changes_head(self, namespace: str) -> str:
        """The cursor of the newest audit entry."""
        return await changes.head(self._db)

    async def record_changes(
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Changes after `after`, in commit (= seq) order."""
        return await changes.record_changes(self._db, namespace, collection, after, filter, limit)

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches (FTS5, bm25), best first, paged by offset."""
        return await records.search_records(self._db, namespace, query)

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` all-or-nothing in one transaction, with audit entries."""
        work = commit.commit(
            self._db,
            namespace,
            writes,
            actor=actor,
            idempotency=idempotency,
            max_record_bytes=self._max_record_bytes,
        )
        return await explained(namespace, self.quotas.list_quotas, work)

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records, each with an `expire` audit entry."""
        return await commit.purge_expired(self._db, limit)

    def pool_stats(self) -> Mapping[str, int]:
        """The reader pool and the one writer."""
        return self._db.stats()

    async def facts(self) -> ServerFacts:
        """Backend name, newest applied yoyo migration ("memory" without yoyo)."""
        version = "memory"
        if (await self._db.fetchall(HAS_YOYO_TABLE))[0][0]:
            rows = await self._db.fetchall(NEWEST_MIGRATION)
            if rows:
                version = str(rows[0][0])
        return ServerFacts(backend="sqlite", schema_version=version, capabilities=CAPABILITIES)

    async def ping(self) -> None:
        """Return when the database answers a query; raise Unavailable otherwise."""
        await self._db.fetchall("SELECT 1")

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""
        async with self._db.transaction() as tx:
            await tx.execute(KEEP_SECRET, (name, candidate, records.now_micros()))
        rows = await self._db.fetchall(READ_SECRET, (name,))
        return bytes(rows[0][0])

    async def close(self) -> None:
        """Close every connection; the object is unusable afterwards."""
        await self.retention.close()
        await self._db.close()
