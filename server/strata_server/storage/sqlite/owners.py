"""One owner's rows on SQLite, for a cleanup of that owner (`OwnerData`).

Each purge is one write transaction of at most `limit` rows with their audit
entries (action OWNER_CLEANUP, by the caller). A transcript leaves the full-text
index before its entries go, as DeleteTranscript does; an artifact's blob stays
for the orphan-blob sweep. The owner indexes of records (0014), transcripts and
artifacts serve every statement."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.models import Actor, RecordRef
from strata_server.core.transcript_rules import ENTITY as TRANSCRIPT
from strata_server.storage.ports.owners import OWNER_CLEANUP, Owned
from strata_server.storage.sqlite.commit import purge_selected
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import to_micros
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcript_queries import (
    DELETE_ENTRIES,
    DELETE_TRANSCRIPT,
    UNINDEX_ENTRIES,
)

COUNT_OWNED = """
SELECT (SELECT count(*) FROM records WHERE namespace = ?1 AND owner = ?2),
       (SELECT count(*) FROM transcripts WHERE namespace = ?1 AND owner = ?2),
       (SELECT count(*) FROM artifacts WHERE namespace = ?1 AND owner = ?2)
"""

SELECT_OWNED_RECORDS = """
SELECT rowid, namespace, collection, id, data, version FROM records
WHERE namespace = ? AND owner = ?
ORDER BY collection, id
LIMIT ?
"""

SELECT_OWNED_TRANSCRIPTS = """
SELECT id FROM transcripts WHERE namespace = ? AND owner = ? ORDER BY id LIMIT ?
"""

PURGE_OWNED_ARTIFACTS = """
DELETE FROM artifacts WHERE (namespace, id) IN (
    SELECT namespace, id FROM artifacts WHERE namespace = ? AND owner = ? ORDER BY id LIMIT ?
) RETURNING id
"""


class SqliteOwners:
    """`OwnerData` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def count_owned(self, namespace: str, owner: str) -> Owned:
        [(records, transcripts, artifacts)] = await self._db.fetchall(
            COUNT_OWNED, (namespace, owner)
        )
        return Owned(int(records), int(transcripts), int(artifacts))

    async def purge_owned_records(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[RecordRef]:
        if limit <= 0:
            return []
        now = to_micros(datetime.now(UTC))
        params = (namespace, owner, limit)
        return await purge_selected(
            self._db, SELECT_OWNED_RECORDS, params, OWNER_CLEANUP, now, actor.name
        )

    async def purge_owned_transcripts(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[str]:
        if limit <= 0:
            return []
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            ids = await tx.fetchall(SELECT_OWNED_TRANSCRIPTS, (namespace, owner, limit))
            for (id,) in ids:
                [(next_seq,)] = await tx.fetchall(DELETE_TRANSCRIPT, (namespace, id))
                await tx.execute(UNINDEX_ENTRIES, (namespace, id))
                await tx.execute(DELETE_ENTRIES, (namespace, id))
                audit = (namespace, now, actor.name, OWNER_CLEANUP, TRANSCRIPT, id)
                await tx.execute(INSERT_AUDIT, (*audit, next_seq - 1, "[]", None))
        return [id for (id,) in ids]

    async def purge_owned_artifacts(
        self, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> int:
        if limit <= 0:
            return 0
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            gone = await tx.fetchall(PURGE_OWNED_ARTIFACTS, (namespace, owner, limit))
            await tx.executemany(
                INSERT_AUDIT,
                [
                    (namespace, now, actor.name, OWNER_CLEANUP, "artifact", id, 1, "[]", None)
                    for (id,) in gone
                ],
            )
        return len(gone)
