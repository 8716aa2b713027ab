"""One owner's rows on PostgreSQL, for a cleanup of that owner (`OwnerData`).

Each purge is one statement over at most `%(limit)s` rows (the shape every
cleanup purge has, `purges.purge_rows`: FOR UPDATE SKIP LOCKED, deleted by
primary key) with an audit entry per row (action OWNER_CLEANUP, by the caller);
a transcript's entries go in a second statement of the same transaction. An
artifact's blob stays for the orphan-blob sweep. The owner indexes of records
(0014), transcripts and artifacts serve every statement."""

from __future__ import annotations

from typing import Any

from strata_server.core.models import Actor, RecordRef
from strata_server.storage.ports.owners import OWNER_CLEANUP, Owned
from strata_server.storage.postgres.content_retention import DELETE_ENTRIES
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.purges import DATA_FIELDS, purge_rows

COUNT_OWNED = """
SELECT (SELECT count(*) FROM records WHERE namespace = %(namespace)s AND owner = %(owner)s),
       (SELECT count(*) FROM transcripts WHERE namespace = %(namespace)s AND owner = %(owner)s),
       (SELECT count(*) FROM artifacts WHERE namespace = %(namespace)s AND owner = %(owner)s)
"""


def _audited(entity: str, entity_id: str, version: str, changed: str = "'[]'::jsonb") -> str:
    """CTE `audited` after `purge_rows`: an OWNER_CLEANUP entry by `%(actor)s` for
    every row `gone` returned."""
    return f""", audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT namespace, now(), %(actor)s::text, '{OWNER_CLEANUP}', '{entity}', {entity_id}, {version},
           {changed}, NULL
    FROM gone
)"""


def _owned(table: str) -> str:
    return f"FROM {table} WHERE namespace = %(namespace)s AND owner = %(owner)s"


PURGE_OWNED_RECORDS = (
    purge_rows(
        "records",
        "namespace, collection, id",
        _owned("records"),
        "collection, id",
        "g.namespace, g.collection, g.id, g.version, g.data",
    )
    + _audited("record", "collection || '/' || id", "version", DATA_FIELDS)
    + "\nSELECT namespace, collection, id FROM gone\n"
)

PURGE_OWNED_TRANSCRIPTS = (
    purge_rows(
        "transcripts", "namespace, id", _owned("transcripts"), "id", "g.namespace, g.id, g.next_seq"
    )
    + _audited("transcript", "id", "next_seq - 1")
    + "\nSELECT id FROM gone\n"
)

PURGE_OWNED_ARTIFACTS = (
    purge_rows("artifacts", "namespace, id", _owned("artifacts"), "id", "g.namespace, g.id")
    + _audited("artifact", "id", "1")
    + "\nSELECT count(*) FROM gone\n"
)


async def _purge(
    conn: Conn, statement: str, namespace: str, owner: str, limit: int, actor: Actor
) -> list[tuple[Any, ...]]:
    """Run one purge statement over at most `limit` of the owner's rows, audited as
    `actor`'s; a limit below 1 purges nothing (LIMIT takes no negative count)."""
    if limit <= 0:
        return []
    params = {"namespace": namespace, "owner": owner, "limit": limit, "actor": actor.name}
    cursor = await conn.execute(statement, params)
    return await cursor.fetchall()


class PostgresOwners:
    """`OwnerData` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def count_owned(self, conn: Conn, namespace: str, owner: str) -> Owned:
        cursor = await conn.execute(COUNT_OWNED, {"namespace": namespace, "owner": owner})
        row = await cursor.fetchone()
        assert row is not None  # a SELECT of three subqueries always returns a row
        return Owned(int(row[0]), int(row[1]), int(row[2]))

    @borrowing()
    async def purge_owned_records(
        self, conn: Conn, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[RecordRef]:
        rows = await _purge(conn, PURGE_OWNED_RECORDS, namespace, owner, limit, actor)
        return [RecordRef(row[0], row[1], row[2]) for row in rows]

    @borrowing(transaction=True)
    async def purge_owned_transcripts(
        self, conn: Conn, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> list[str]:
        rows = await _purge(conn, PURGE_OWNED_TRANSCRIPTS, namespace, owner, limit, actor)
        ids = [row[0] for row in rows]
        if ids:
            await conn.execute(DELETE_ENTRIES, (namespace, ids))
        return ids

    @borrowing()
    async def purge_owned_artifacts(
        self, conn: Conn, namespace: str, owner: str, limit: int, *, actor: Actor
    ) -> int:
        rows = await _purge(conn, PURGE_OWNED_ARTIFACTS, namespace, owner, limit, actor)
        return int(rows[0][0]) if rows else 0  # the statement's one row: the count
