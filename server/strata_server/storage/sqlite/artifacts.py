"""Artifact rows and blob pins on SQLite (the `ArtifactStore` adapter).

The one writer serializes every write transaction, which is exactly the per-blob
lock the port asks for: a sweep's "unreferenced? then delete the bytes" runs inside
one write transaction, so no upload can pin or name that blob in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

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
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import SQLITE, to_micros
from strata_server.storage.sqlite.request_log import store_result, stored_result
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT

INSERT = f"INSERT INTO artifacts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT = f"SELECT {COLUMNS} FROM artifacts WHERE namespace = ? AND id = ?"
DELETE = "DELETE FROM artifacts WHERE namespace = ? AND id = ?"
INSERT_PIN = (
    "INSERT OR REPLACE INTO blob_pins (namespace, upload_id, sha256, expire_time) "
    "VALUES (?, ?, ?, ?)"
)
DELETE_PIN = "DELETE FROM blob_pins WHERE namespace = ? AND upload_id = ?"
NAMESPACE_REF = (
    "SELECT sha256, compression, size, stored_size FROM artifacts "
    "WHERE sha256 = ? AND namespace = ? LIMIT 1"
)
REFERENCED = """
SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = ?1)
    OR EXISTS (SELECT 1 FROM transcript_segments WHERE sha256 = ?1)
    OR EXISTS (SELECT 1 FROM blob_pins WHERE sha256 = ?1 AND expire_time > ?2)
"""
"""Whether an artifact or an archived transcript's segment names the blob, or a live
pin holds it."""
PURGE_PINS = "DELETE FROM blob_pins WHERE expire_time <= ?"
ALL_PAGE = artifact_sql.all_page(SQLITE)
HOT_ELSEWHERE = artifact_sql.hot_elsewhere(SQLITE)
SET_TIER = artifact_sql.set_tier(SQLITE)


async def _referenced_in(tx: Transaction, namespace: str, sha256: str) -> bool:
    return bool(await tx.fetchall(NAMESPACE_REF, (sha256, namespace)))


class SqliteArtifacts:
    """`ArtifactStore` over SQLite."""

    def __init__(self, db: Connections, quotas: QuotaStore) -> None:
        self._db = db
        self._quotas = quotas

    async def create_artifact(
        self, artifact: Artifact, context: WriteContext, *, upload_id: str | None
    ) -> Artifact:
        """Insert the row with its audit entry and drop the pin, in one transaction."""
        idempotency = context.idempotency

        async def insert() -> Artifact:
            namespace = artifact.namespace
            async with self._db.transaction() as tx:
                if upload_id is not None:
                    await tx.execute(DELETE_PIN, (namespace, upload_id))
                if idempotency is not None:
                    stored = await stored_result(tx, namespace, idempotency)
                    if stored is not None:
                        return artifact_from_json(stored)
                if upload_id is None and not await _referenced_in(tx, namespace, artifact.sha256):
                    raise artifact_sql.blob_not_found(artifact.sha256)
                await tx.execute(INSERT, artifact_sql.artifact_values(SQLITE, artifact))
                audit = artifact_sql.audit_values(
                    SQLITE,
                    artifact,
                    "create",
                    artifact.create_time,
                    context.actor,
                    context.request_id,
                )
                await tx.execute(INSERT_AUDIT, audit)
                if idempotency is not None:
                    now_us = to_micros(artifact.create_time)
                    await store_result(
                        tx, namespace, idempotency, artifact_to_json(artifact), now_us
                    )
            return artifact

        return await explained(artifact.namespace, self._quotas.list_quotas, insert())

    async def pin_blob(
        self, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Pin in a write transaction: after any sweep transaction already running."""
        async with self._db.transaction() as tx:
            await tx.execute(INSERT_PIN, (namespace, upload_id, sha256, to_micros(expire_time)))

    async def unpin_blob(self, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin."""
        async with self._db.transaction() as tx:
            await tx.execute(DELETE_PIN, (namespace, upload_id))

    async def get_artifact(self, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        rows = await self._db.fetchall(SELECT, (namespace, id))
        return artifact_sql.found(SQLITE, rows[0] if rows else None, id)

    async def list_artifacts(self, namespace: str, query: ArtifactListQuery) -> Page[Artifact]:
        sql, params = artifact_sql.list_artifacts(SQLITE, namespace, query)
        rows = await self._db.fetchall(sql, params)
        return artifact_sql.artifact_page(SQLITE, rows, query.limit)

    async def delete_artifact(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Delete the row with its audit entry."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(SELECT, (namespace, id))
            artifact = artifact_sql.found(SQLITE, rows[0] if rows else None, id)
            await tx.execute(DELETE, (namespace, id))
            audit = artifact_sql.audit_values(SQLITE, artifact, "delete", datetime.now(UTC), actor)
            await tx.execute(INSERT_AUDIT, audit)
        return artifact

    async def namespace_blobs(self, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
        """The blobs among `sha256s` that an artifact of the namespace names."""
        found: dict[str, BlobRef] = {}
        for sha256 in dict.fromkeys(sha256s):
            rows = await self._db.fetchall(NAMESPACE_REF, (sha256, namespace))
            if rows:
                found[sha256] = BlobRef(rows[0][0], Compression(rows[0][1]), rows[0][2], rows[0][3])
        return found

    async def unreferenced_blobs(self, sha256s: Sequence[str], now: datetime) -> set[str]:
        """Of `sha256s`, those no artifact names and no live pin holds."""
        now_us = to_micros(now)
        free: set[str] = set()
        for sha256 in dict.fromkeys(sha256s):
            rows = await self._db.fetchall(REFERENCED, (sha256, now_us))
            if not rows[0][0]:
                free.add(sha256)
        return free

    async def delete_blob_if_unreferenced(
        self, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Check and delete inside one write transaction (holding the single writer)."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(REFERENCED, (sha256, to_micros(now)))
            if rows[0][0]:
                return False
            await delete()
        return True

    async def purge_pins(self, now: datetime) -> int:
        """Delete expired pins; how many."""
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(PURGE_PINS + " RETURNING 1", (to_micros(now),))
        return len(rows)

    def all_artifacts(self) -> AsyncIterator[Artifact]:
        return artifact_sql.every_artifact(self._page, SQLITE)

    async def count_archivable(self, namespace: str, kind: str | None, before: datetime) -> int:
        sql, params = artifact_sql.archivable(SQLITE, namespace, kind, before, count=True)
        rows = await self._db.fetchall(sql, params)
        return int(rows[0][0])

    async def archivable(
        self, namespace: str, kind: str | None, before: datetime, limit: int
    ) -> list[Artifact]:
        sql, params = artifact_sql.archivable(SQLITE, namespace, kind, before, count=False)
        rows = await self._db.fetchall(sql, [*params, limit])
        return [artifact_sql.artifact_from_row(SQLITE, row) for row in rows]

    async def blob_hot_elsewhere(self, artifact: Artifact) -> bool:
        rows = await self._db.fetchall(
            HOT_ELSEWHERE, (artifact.sha256, artifact.namespace, artifact.id)
        )
        return bool(rows[0][0])

    async def set_tier(
        self, namespace: str, id: str, archive_time: datetime | None, *, actor: Actor
    ) -> Artifact:
        """Update the row with its audit entry, in one transaction."""
        at = to_micros(archive_time) if archive_time is not None else None
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(SET_TIER, (at, namespace, id))
            artifact = artifact_sql.found(SQLITE, rows[0] if rows else None, id)
            action = "restore" if archive_time is None else "archive"
            audit = artifact_sql.audit_values(SQLITE, artifact, action, datetime.now(UTC), actor)
            await tx.execute(INSERT_AUDIT, audit)
        return artifact

    async def _page(self, after: tuple[str, str]) -> list[Row]:
        return await self._db.fetchall(ALL_PAGE, (*after, artifact_sql.PAGE))
