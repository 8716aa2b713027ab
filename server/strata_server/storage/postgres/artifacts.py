"""Artifact rows and blob pins on PostgreSQL (the `ArtifactStore` adapter).

Uploads and the orphan sweep serialize per blob with a transaction-scoped advisory
lock keyed by the SHA-256 (`LOCK_BLOB`): a pin, and the sweep's "unreferenced? then
delete the bytes", each run under it. Reads are single statements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from strata_server.core.artifact_rules import (
    Artifact,
    ArtifactListQuery,
    BlobRef,
    Compression,
    artifact_from_json,
    artifact_to_json,
)
from strata_server.core.models import Actor, Page
from strata_server.core.quota_rules import explained
from strata_server.storage import artifact_sql
from strata_server.storage.artifact_sql import COLUMNS
from strata_server.storage.ports import QuotaStore
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import now
from strata_server.storage.postgres.request_log import claim_request

LOCK_BLOB = "SELECT pg_advisory_xact_lock(%s)"
INSERT_PIN = """
INSERT INTO blob_pins (namespace, upload_id, sha256, expire_time) VALUES (%s, %s, %s, %s)
ON CONFLICT (namespace, upload_id) DO UPDATE SET sha256 = excluded.sha256,
    expire_time = excluded.expire_time
"""
DELETE_PIN = "DELETE FROM blob_pins WHERE namespace = %s AND upload_id = %s"
INSERT = f"""
INSERT INTO artifacts ({COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)
"""
INSERT_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
"""
STORE_RESULT = "UPDATE request_log SET result = %s WHERE namespace = %s AND request_id = %s"
SELECT = f"SELECT {COLUMNS} FROM artifacts WHERE namespace = %s AND id = %s"
DELETE = f"DELETE FROM artifacts WHERE namespace = %s AND id = %s RETURNING {COLUMNS}"
NAMESPACE_REFS = """
SELECT DISTINCT ON (sha256) sha256, compression, size, stored_size FROM artifacts
WHERE sha256 = ANY(%s) AND namespace = %s
"""
REFERENCED = """
SELECT s.sha256 FROM unnest(%s::text[]) AS s(sha256)
WHERE EXISTS (SELECT 1 FROM artifacts a WHERE a.sha256 = s.sha256)
   OR EXISTS (SELECT 1 FROM transcript_segments g WHERE g.sha256 = s.sha256)
   OR EXISTS (SELECT 1 FROM blob_pins p WHERE p.sha256 = s.sha256 AND p.expire_time > %s)
"""
PURGE_PINS = "DELETE FROM blob_pins WHERE expire_time <= %s"
ALL_PAGE = artifact_sql.all_page(POSTGRES).encode()
HOT_ELSEWHERE = artifact_sql.hot_elsewhere(POSTGRES).encode()
SET_TIER = artifact_sql.set_tier(POSTGRES).encode()


def lock_key(sha256: str) -> int:
    """The advisory-lock key of a blob: its first 64 bits, signed."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


class PostgresArtifacts:
    """`ArtifactStore` over PostgreSQL."""

    def __init__(self, runner: Runner, quotas: QuotaStore) -> None:
        self.runner = runner
        self._quotas = quotas

    async def create_artifact(
        self, artifact: Artifact, context: WriteContext, *, upload_id: str | None
    ) -> Artifact:
        """Insert the row with its audit entry and drop the pin (inside the caller's
        transaction); an upload without bytes checks its reference under the blob lock."""
        idempotency = context.idempotency

        async def insert(conn: Conn) -> Artifact:
            namespace = artifact.namespace
            if upload_id is not None:
                await conn.execute(DELETE_PIN, (namespace, upload_id), prepare=True)
            if idempotency is not None:
                stored = await claim_request(conn, namespace, idempotency)
                if stored is not None:
                    return artifact_from_json(stored)
            if upload_id is None:
                await conn.execute(LOCK_BLOB, (lock_key(artifact.sha256),), prepare=True)
                cursor = await conn.execute(
                    NAMESPACE_REFS, ([artifact.sha256], namespace), prepare=True
                )
                if await cursor.fetchone() is None:
                    raise artifact_sql.blob_not_found(artifact.sha256)
            await conn.execute(
                INSERT, artifact_sql.artifact_values(POSTGRES, artifact), prepare=True
            )
            audit = artifact_sql.audit_values(
                POSTGRES,
                artifact,
                "create",
                artifact.create_time,
                context.actor,
                context.request_id,
            )
            await conn.execute(INSERT_AUDIT, audit, prepare=True)
            if idempotency is not None:
                await conn.execute(
                    STORE_RESULT,
                    (Jsonb(artifact_to_json(artifact)), namespace, idempotency.request_id),
                    prepare=True,
                )
            return artifact

        work = self.runner.run(insert, transaction=True)
        return await explained(artifact.namespace, self._quotas.list_quotas, work)

    @borrowing(transaction=True)
    async def pin_blob(
        self, conn: Conn, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Pin under the blob's lock (so after any sweep of it that is under way)."""
        await conn.execute(LOCK_BLOB, (lock_key(sha256),), prepare=True)
        await conn.execute(INSERT_PIN, (namespace, upload_id, sha256, expire_time), prepare=True)

    @borrowing()
    async def unpin_blob(self, conn: Conn, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin."""
        await conn.execute(DELETE_PIN, (namespace, upload_id), prepare=True)

    @borrowing()
    async def get_artifact(self, conn: Conn, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        cursor = await conn.execute(SELECT, (namespace, id), prepare=True)
        return artifact_sql.found(POSTGRES, await cursor.fetchone(), id)

    @borrowing()
    async def list_artifacts(
        self, conn: Conn, namespace: str, query: ArtifactListQuery
    ) -> Page[Artifact]:
        sql, params = artifact_sql.list_artifacts(POSTGRES, namespace, query)
        cursor = await conn.execute(sql.encode(), params)
        return artifact_sql.artifact_page(POSTGRES, await cursor.fetchall(), query.limit)

    @borrowing(transaction=True)
    async def delete_artifact(
        self, conn: Conn, namespace: str, id: str, *, actor: Actor
    ) -> Artifact:
        """Delete the row with its audit entry (inside the caller's transaction)."""
        cursor = await conn.execute(DELETE, (namespace, id), prepare=True)
        artifact = artifact_sql.found(POSTGRES, await cursor.fetchone(), id)
        audit = artifact_sql.audit_values(POSTGRES, artifact, "delete", now(), actor)
        await conn.execute(INSERT_AUDIT, audit, prepare=True)
        return artifact

    @borrowing()
    async def namespace_blobs(
        self, conn: Conn, namespace: str, sha256s: Sequence[str]
    ) -> dict[str, BlobRef]:
        """The blobs among `sha256s` that an artifact of the namespace names."""
        cursor = await conn.execute(NAMESPACE_REFS, (list(sha256s), namespace), prepare=True)
        return {
            row[0]: BlobRef(row[0], Compression(row[1]), row[2], row[3])
            for row in await cursor.fetchall()
        }

    @borrowing()
    async def unreferenced_blobs(
        self, conn: Conn, sha256s: Sequence[str], now: datetime
    ) -> set[str]:
        """Of `sha256s`, those no artifact names and no live pin holds."""
        cursor = await conn.execute(REFERENCED, (list(sha256s), now), prepare=True)
        referenced = {row[0] for row in await cursor.fetchall()}
        return set(sha256s) - referenced

    @borrowing(transaction=True)
    async def delete_blob_if_unreferenced(
        self, conn: Conn, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Under the blob's lock (inside the caller's transaction): check, then delete."""
        await conn.execute(LOCK_BLOB, (lock_key(sha256),), prepare=True)
        cursor = await conn.execute(REFERENCED, ([sha256], now), prepare=True)
        if await cursor.fetchone() is not None:
            return False
        await delete()
        return True

    @borrowing()
    async def purge_pins(self, conn: Conn, now: datetime) -> int:
        """Delete expired pins; how many."""
        cursor = await conn.execute(PURGE_PINS, (now,), prepare=True)
        return cursor.rowcount

    def all_artifacts(self) -> AsyncIterator[Artifact]:
        return artifact_sql.every_artifact(self._page, POSTGRES)

    @borrowing()
    async def count_archivable(
        self, conn: Conn, namespace: str, kind: str | None, before: datetime
    ) -> int:
        sql, params = artifact_sql.archivable(POSTGRES, namespace, kind, before, count=True)
        cursor = await conn.execute(sql.encode(), params)
        row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    @borrowing()
    async def archivable(
        self, conn: Conn, namespace: str, kind: str | None, before: datetime, limit: int
    ) -> list[Artifact]:
        sql, params = artifact_sql.archivable(POSTGRES, namespace, kind, before, count=False)
        cursor = await conn.execute(sql.encode(), [*params, limit])
        return [artifact_sql.artifact_from_row(POSTGRES, row) for row in await cursor.fetchall()]

    @borrowing()
    async def blob_hot_elsewhere(self, conn: Conn, artifact: Artifact) -> bool:
        cursor = await conn.execute(
            HOT_ELSEWHERE, (artifact.sha256, artifact.namespace, artifact.id), prepare=True
        )
        row = await cursor.fetchone()
        return bool(row and row[0])

    @borrowing(transaction=True)
    async def set_tier(
        self, conn: Conn, namespace: str, id: str, archive_time: datetime | None, *, actor: Actor
    ) -> Artifact:
        """Update the row with its audit entry (inside the caller's transaction)."""
        cursor = await conn.execute(SET_TIER, (archive_time, namespace, id), prepare=True)
        artifact = artifact_sql.found(POSTGRES, await cursor.fetchone(), id)
        action = "restore" if archive_time is None else "archive"
        audit = artifact_sql.audit_values(POSTGRES, artifact, action, now(), actor)
        await conn.execute(INSERT_AUDIT, audit, prepare=True)
        return artifact

    @borrowing()
    async def _page(self, conn: Conn, after: tuple[str, str]) -> list[tuple[Any, ...]]:
        cursor = await conn.execute(ALL_PAGE, (*after, artifact_sql.PAGE), prepare=True)
        return await cursor.fetchall()
