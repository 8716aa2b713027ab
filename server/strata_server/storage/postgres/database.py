"""`PostgresDatabase`: the production backend, PostgreSQL through a psycopg pool.

Open it with the classmethod `PostgresDatabase.open(dsn, max_record_bytes=...)`. The
schema comes from the yoyo migrations in `migrations/postgres/`, applied before
`open`.

Every call borrows one pooled connection and turns driver errors into domain errors
(`pool.translate`): an unreachable database is `Unavailable`, never a psycopg
exception. A connection found dead on first use (the database restarted since it was
pooled) makes the pool check all its idle connections, and the call is retried once
on a fresh one: always for a read, and for a commit only when its BEGIN failed, since
nothing can have been written then. So the server serves again as soon as the
database is back, without a restart.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import TypeVar

import structlog

from strata_server.core.errors import Conflict
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
from strata_server.storage.postgres import (
    changes,
    commit,
    queries,
    records,
)
from strata_server.storage.postgres.indexes import IndexedPaths, PostgresIndexes
from strata_server.storage.postgres.leader import SessionLeader
from strata_server.storage.postgres.pool import Conn, Pool, Runner, open_pool
from strata_server.storage.postgres.quotas import PostgresQuotas
from strata_server.storage.postgres.retention import PostgresRetention
from strata_server.storage.postgres.tokens import PostgresTokens

log = structlog.get_logger("strata.postgres")

COMMIT_ATTEMPTS = 4
"""How often a commit that lost a race to a concurrent transaction is tried."""


T = TypeVar("T")

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

NO_YOYO_VERSION = "unknown"
"""schema_version when the schema was not applied by yoyo (no _yoyo_migration table)."""


class PostgresDatabase:
    """The `storage.ports.Database` port over PostgreSQL (satisfied structurally)."""

    def __init__(self, pool: Pool, *, max_record_bytes: int) -> None:
        self._pool = pool
        self.runner = Runner(pool)
        self._run = self.runner.run
        self.quotas = PostgresQuotas(self.runner)
        self._max_record_bytes = max_record_bytes
        self._indexes = IndexedPaths()
        self.indexes = PostgresIndexes(self.runner, self._indexes)
        info = pool.conninfo
        assert isinstance(info, str)  # open_pool gives a string
        self.retention = PostgresRetention(self.runner, SessionLeader(info))
        self._tokens = PostgresTokens(self.runner)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        max_record_bytes: int,
        min_size: int = 2,
        max_size: int = 10,
        pool_timeout: float = 5.0,
        statement_timeout: float = 0.0,
    ) -> PostgresDatabase:
        """Connect a pool of `min_size`..`max_size` connections to `dsn`.

        `pool_timeout` is how long a call waits for a free connection (and `open` for the
        first ones) before raising Unavailable. `statement_timeout` (seconds, 0: none)
        bounds every statement; one that runs longer fails with QueryTimeout.
        """
        pool = await open_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            pool_timeout=pool_timeout,
            statement_timeout=statement_timeout,
        )
        return cls(pool, max_record_bytes=max_record_bytes)

    @property
    def tokens(self) -> PostgresTokens:
        """The bearer tokens, over the same pool."""
        return self._tokens

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        return await self._run(lambda conn: records.get_record(conn, namespace, collection, id))

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`; missing ids are absent."""
        return await self._run(
            lambda conn: records.batch_get_records(conn, namespace, collection, ids)
        )

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order` after `query.after` (keyset pagination)."""

        async def work(conn: Conn) -> Page[Record]:
            dialect = await self._indexes.dialect(conn)
            return await records.list_records(conn, namespace, query, dialect)

        return await self._run(work)

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""

        async def work(conn: Conn) -> int:
            dialect = await self._indexes.dialect(conn)
            return await records.count_records(conn, namespace, collection, filter, dialect)

        return await self._run(work)

    async def changes_head(self, namespace: str) -> str:
        """The cursor below which every transaction has ended."""
        return await self._run(changes.head)

    async def record_changes(
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Settled changes after `after`, in (xact, seq) order."""

        async def work(conn: Conn) -> ChangeBatch:
            dialect = await self._indexes.dialect(conn)
            return await changes.record_changes(
                conn, namespace, collection, after, filter, limit, dialect
            )

        return await self._run(work)

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches, paged by offset: `plainto_tsquery`, so every word must
        match as on SQLite; ranked by ts_rank."""
        return await self._run(lambda conn: records.search_records(conn, namespace, query))

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` all-or-nothing in one transaction, with audit entries.

        A Conflict (a concurrent transaction created a key this one meant to insert,
        or a serialization failure) rolled everything back, so the commit is retried
        here a few times: the next attempt sees the other transaction's rows and
        decides again (an upsert becomes an update, a create AlreadyExists).
        Creates of new keys first try the optimistic path (commit.optimistic).
        """
        return await explained(
            namespace, self.quotas.list_quotas, self._commit(namespace, writes, actor, idempotency)
        )

    async def _commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        actor: Actor,
        idempotency: Idempotency | None,
    ) -> list[WriteResult]:
        assume_new = commit.optimistic(writes)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):

            async def work(conn: Conn, new: bool = assume_new) -> list[WriteResult]:
                return await commit.commit(
                    conn,
                    namespace,
                    writes,
                    actor=actor,
                    idempotency=idempotency,
                    max_record_bytes=self._max_record_bytes,
                    assume_new=new,
                )

            try:
                return await self._run(work, transaction=True)
            except commit.ExistingRows:
                assume_new = False  # rolled back; decide again against the stored rows
                continue
            except Conflict:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records, each with an `expire` audit entry."""
        return await self._run(lambda conn: commit.purge_expired(conn, limit))

    # --- QueueStore (storage/postgres/queue.py) -----------------------------------------

    # --- TranscriptStore (storage/postgres/transcripts.py) ------------------------------

    # --- QuotaStore (storage/postgres/quotas.py) ----------------------------------------

    async def facts(self) -> ServerFacts:
        """Backend name, newest applied yoyo migration (NO_YOYO_VERSION without yoyo)."""

        async def schema_version(conn: Conn) -> str:
            cursor = await conn.execute(queries.HAS_YOYO_TABLE)
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return NO_YOYO_VERSION
            cursor = await conn.execute(queries.NEWEST_MIGRATION)
            row = await cursor.fetchone()
            return str(row[0]) if row is not None else NO_YOYO_VERSION

        version = await self._run(schema_version)
        return ServerFacts(backend="postgres", schema_version=version, capabilities=CAPABILITIES)

    async def ping(self) -> None:
        """Return when the database answers a query; raise Unavailable otherwise."""

        async def select_one(conn: Conn) -> None:
            await conn.execute(queries.PING, prepare=True)

        await self._run(select_one)

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""

        async def keep_and_read(conn: Conn) -> bytes:
            await conn.execute(queries.KEEP_SECRET, (name, candidate))
            cursor = await conn.execute(queries.READ_SECRET, (name,))
            row = await cursor.fetchone()
            assert row is not None  # inserted above, or by the replica that won
            return bytes(row[0])

        return await self._run(keep_and_read)

    def pool_stats(self) -> Mapping[str, int]:
        """psycopg_pool's own figures: open connections, idle ones, queued callers, and
        the connections handed out since the start (`requests`: one per statement or
        transaction)."""
        stats = self._pool.get_stats()
        return {
            "size": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "requests": stats.get("requests_num", 0),
        }

    async def close(self) -> None:
        """Close the pool and its connections; the object is unusable afterwards.
        An index build still running is abandoned: the next CreateIndex of its
        field replaces the invalid index it leaves."""
        await self.indexes.close()
        await self.retention.close()
        await self._pool.close()
