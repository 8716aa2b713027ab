"""Retention of sealed transcripts and of artifacts on SQLite: the counts and purges
a cleanup run makes (core/retention.py has the rules). Kept apart from
retention.py, which holds the policies and the record and job purges.

A transcript goes with its entries (unindexed from full-text search first, as
DeleteTranscript does) in the transaction that writes its audit entry; an
artifact row goes with its audit entry, and its blob stays for the orphan sweep,
which keeps any blob another artifact still names."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.transcripts import ENTITY as TRANSCRIPT
from strata_server.storage.sqlite.commit import EXPIRY_ACTOR
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import to_micros
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcripts import (
    DELETE_ENTRIES,
    DELETE_TRANSCRIPT,
    UNINDEX_ENTRIES,
)

OLD_TRANSCRIPTS = """
FROM transcripts
WHERE namespace = ? AND seal_time IS NOT NULL AND seal_time < ?
"""

SELECT_OLD_TRANSCRIPTS = "SELECT id " + OLD_TRANSCRIPTS + "ORDER BY seal_time LIMIT ?"

OLD_ARTIFACTS = """
FROM artifacts
WHERE namespace = :namespace AND create_time < :before
  AND (kind = :kind OR :kind = '' AND NOT EXISTS (
      SELECT 1 FROM retention_policies AS p
      WHERE p.namespace = artifacts.namespace AND p.target = 'artifacts'
        AND p.selector = artifacts.kind))
"""
"""A kind's artifacts, or (kind '') those of every kind no policy names: a kind's
own policy wins over the namespace-wide one."""

PURGE_ARTIFACTS = (
    "DELETE FROM artifacts WHERE (namespace, id) IN (SELECT namespace, id "
    + OLD_ARTIFACTS
    + " ORDER BY create_time LIMIT :limit) RETURNING id"
)


async def count_old_transcripts(db: Connections, namespace: str, before: datetime) -> int:
    [(count,)] = await db.fetchall(
        "SELECT count(*) " + OLD_TRANSCRIPTS, (namespace, to_micros(before))
    )
    return int(count)


async def purge_old_transcripts(
    db: Connections, namespace: str, before: datetime, limit: int
) -> int:
    if limit <= 0:
        return 0
    now = to_micros(datetime.now(UTC))
    async with db.transaction() as tx:
        ids = await tx.fetchall(SELECT_OLD_TRANSCRIPTS, (namespace, to_micros(before), limit))
        for (id,) in ids:
            [(next_seq,)] = await tx.fetchall(DELETE_TRANSCRIPT, (namespace, id))
            await tx.execute(UNINDEX_ENTRIES, (namespace, id))
            await tx.execute(DELETE_ENTRIES, (namespace, id))
            await tx.execute(
                INSERT_AUDIT,
                (
                    namespace,
                    now,
                    EXPIRY_ACTOR,
                    "retention",
                    TRANSCRIPT,
                    id,
                    next_seq - 1,
                    "[]",
                    None,
                ),
            )
    return len(ids)


def _artifact_params(namespace: str, kind: str, before: datetime) -> dict[str, object]:
    return {"namespace": namespace, "kind": kind, "before": to_micros(before)}


async def count_old_artifacts(db: Connections, namespace: str, kind: str, before: datetime) -> int:
    params = _artifact_params(namespace, kind, before)
    [(count,)] = await db.fetchall("SELECT count(*) " + OLD_ARTIFACTS, params)
    return int(count)


async def purge_old_artifacts(
    db: Connections, namespace: str, kind: str, before: datetime, limit: int
) -> int:
    if limit <= 0:
        return 0
    now = to_micros(datetime.now(UTC))
    params = {**_artifact_params(namespace, kind, before), "limit": limit}
    async with db.transaction() as tx:
        gone = await tx.fetchall(PURGE_ARTIFACTS, params)
        for (id,) in gone:
            await tx.execute(
                INSERT_AUDIT,
                (namespace, now, EXPIRY_ACTOR, "retention", "artifact", id, 1, "[]", None),
            )
    return len(gone)
