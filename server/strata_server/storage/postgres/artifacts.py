"""Artifact rows and blob pins on PostgreSQL (the `storage.ports.ArtifactStore` half).

Uploads and the orphan sweep serialize per blob with a transaction-scoped advisory
lock keyed by the SHA-256 (`LOCK_BLOB`): a pin, and the sweep's "unreferenced? then
delete the bytes", each run under it. Reads are single statements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from strata_server.core.artifacts import (
    Artifact,
    BlobRef,
    Compression,
    artifact_from_json,
    artifact_to_json,
)
from strata_server.core.errors import FailedPrecondition, NotFound
from strata_server.core.models import Actor, Idempotency, Page
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.records import now
from strata_server.storage.postgres.request_log import claim_request

ENTITY = "artifact"
COLUMNS = (
    "namespace, id, owner, kind, name, content_type, sha256, size, stored_size, "
    "compression, labels, create_time"
)
CREATED_FIELDS = ["owner", "kind", "name", "content_type", "sha256", "size", "labels"]

LOCK_BLOB = "SELECT pg_advisory_xact_lock(%s)"
INSERT_PIN = """
INSERT INTO blob_pins (namespace, upload_id, sha256, expire_time) VALUES (%s, %s, %s, %s)
ON CONFLICT (namespace, upload_id) DO UPDATE SET sha256 = excluded.sha256,
    expire_time = excluded.expire_time
"""
DELETE_PIN = "DELETE FROM blob_pins WHERE namespace = %s AND upload_id = %s"
INSERT = f"""
INSERT INTO artifacts ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
INSERT_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (%s, %s, %s, %s, 'artifact', %s, 1, %s, %s)
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
   OR EXISTS (SELECT 1 FROM blob_pins p WHERE p.sha256 = s.sha256 AND p.expire_time > %s)
"""
PURGE_PINS = "DELETE FROM blob_pins WHERE expire_time <= %s"
ALL_PAGE = f"""
SELECT {COLUMNS} FROM artifacts WHERE (namespace, id) > (%s, %s) ORDER BY namespace, id LIMIT %s
"""
PAGE = 500


def lock_key(sha256: str) -> int:
    """The advisory-lock key of a blob: its first 64 bits, signed."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


def artifact_from_row(row: Sequence[Any]) -> Artifact:
    """An Artifact from a row selected with COLUMNS."""
    return Artifact(
        namespace=row[0],
        id=row[1],
        owner=row[2],
        kind=row[3],
        name=row[4],
        content_type=row[5],
        sha256=row[6],
        size=row[7],
        stored_size=row[8],
        compression=Compression(row[9]),
        labels=dict(row[10]),
        create_time=row[11],
    )


async def pin_blob(
    conn: Conn, namespace: str, upload_id: str, sha256: str, expire_time: datetime
) -> None:
    """Pin under the blob's lock (so after any sweep of it that is under way)."""
    await conn.execute(LOCK_BLOB, (lock_key(sha256),), prepare=True)
    await conn.execute(INSERT_PIN, (namespace, upload_id, sha256, expire_time), prepare=True)


async def unpin_blob(conn: Conn, namespace: str, upload_id: str) -> None:
    """Drop an upload's pin."""
    await conn.execute(DELETE_PIN, (namespace, upload_id), prepare=True)


async def create_artifact(
    conn: Conn,
    artifact: Artifact,
    *,
    actor: Actor,
    idempotency: Idempotency | None,
    upload_id: str | None,
) -> Artifact:
    """Insert the row with its audit entry and drop the pin (inside the caller's
    transaction); an upload without bytes checks its reference under the blob lock."""
    namespace = artifact.namespace
    if upload_id is not None:
        await conn.execute(DELETE_PIN, (namespace, upload_id), prepare=True)
    if idempotency is not None:
        stored = await claim_request(conn, namespace, idempotency)
        if stored is not None:
            return artifact_from_json(stored)
    if upload_id is None:
        await conn.execute(LOCK_BLOB, (lock_key(artifact.sha256),), prepare=True)
        cursor = await conn.execute(NAMESPACE_REFS, ([artifact.sha256], namespace), prepare=True)
        if await cursor.fetchone() is None:
            raise FailedPrecondition(
                f"no content with sha256 {artifact.sha256} is stored in this namespace; "
                "send the content",
                reason="BLOB_NOT_FOUND",
            )
    await conn.execute(
        INSERT,
        (
            namespace,
            artifact.id,
            artifact.owner,
            artifact.kind,
            artifact.name,
            artifact.content_type,
            artifact.sha256,
            artifact.size,
            artifact.stored_size,
            artifact.compression.value,
            Jsonb(dict(artifact.labels)),
            artifact.create_time,
        ),
        prepare=True,
    )
    request_id = idempotency.request_id if idempotency else None
    await conn.execute(
        INSERT_AUDIT,
        (
            namespace,
            artifact.create_time,
            actor.name,
            "create",
            artifact.id,
            Jsonb(CREATED_FIELDS),
            request_id,
        ),
        prepare=True,
    )
    if idempotency is not None:
        await conn.execute(
            STORE_RESULT,
            (Jsonb(artifact_to_json(artifact)), namespace, idempotency.request_id),
            prepare=True,
        )
    return artifact


async def get_artifact(conn: Conn, namespace: str, id: str) -> Artifact:
    """One artifact, or NotFound."""
    cursor = await conn.execute(SELECT, (namespace, id), prepare=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"artifact {id!r} does not exist")
    return artifact_from_row(row)


async def list_artifacts(
    conn: Conn,
    namespace: str,
    owner: str | None,
    kind: str | None,
    limit: int,
    after: str | None,
) -> Page[Artifact]:
    """One page in id order; asks for one extra row to know whether more follow."""
    where = ["namespace = %s"]
    params: list[object] = [namespace]
    if owner is not None:
        where.append("owner = %s")
        params.append(owner)
    if kind is not None:
        where.append("kind = %s")
        params.append(kind)
    if after is not None:
        where.append("id > %s")
        params.append(after)
    # Built from fixed fragments only; every value is a parameter.
    sql = f"SELECT {COLUMNS} FROM artifacts WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"
    cursor = await conn.execute(sql.encode(), (*params, limit + 1))
    rows = await cursor.fetchall()
    items = [artifact_from_row(row) for row in rows[:limit]]
    last = (items[-1].id,) if len(rows) > limit and items else None
    return Page(items, last)


async def delete_artifact(conn: Conn, namespace: str, id: str, *, actor: Actor) -> Artifact:
    """Delete the row with its audit entry (inside the caller's transaction)."""
    cursor = await conn.execute(DELETE, (namespace, id), prepare=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"artifact {id!r} does not exist")
    artifact = artifact_from_row(row)
    await conn.execute(
        INSERT_AUDIT,
        (namespace, now(), actor.name, "delete", id, Jsonb([]), None),
        prepare=True,
    )
    return artifact


async def namespace_blobs(conn: Conn, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
    """The blobs among `sha256s` that an artifact of the namespace names."""
    cursor = await conn.execute(NAMESPACE_REFS, (list(sha256s), namespace), prepare=True)
    return {
        row[0]: BlobRef(row[0], Compression(row[1]), row[2], row[3])
        for row in await cursor.fetchall()
    }


async def unreferenced_blobs(conn: Conn, sha256s: Sequence[str], at: datetime) -> set[str]:
    """Of `sha256s`, those no artifact names and no live pin holds."""
    cursor = await conn.execute(REFERENCED, (list(sha256s), at), prepare=True)
    referenced = {row[0] for row in await cursor.fetchall()}
    return set(sha256s) - referenced


async def delete_blob_if_unreferenced(
    conn: Conn, sha256: str, at: datetime, delete: Callable[[], Awaitable[None]]
) -> bool:
    """Under the blob's lock (inside the caller's transaction): check, then delete."""
    await conn.execute(LOCK_BLOB, (lock_key(sha256),), prepare=True)
    cursor = await conn.execute(REFERENCED, ([sha256], at), prepare=True)
    if await cursor.fetchone() is not None:
        return False
    await delete()
    return True


async def purge_pins(conn: Conn, at: datetime) -> int:
    """Delete expired pins; how many."""
    cursor = await conn.execute(PURGE_PINS, (at,), prepare=True)
    return cursor.rowcount


async def artifacts_page(conn: Conn, after: tuple[str, str]) -> list[Artifact]:
    """The next PAGE artifacts of every namespace after (namespace, id)."""
    cursor = await conn.execute(ALL_PAGE, (*after, PAGE), prepare=True)
    return [artifact_from_row(row) for row in await cursor.fetchall()]
