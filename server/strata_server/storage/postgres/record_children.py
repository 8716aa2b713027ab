"""A record delete's children on PostgreSQL: the transcripts and artifacts naming a
deleted record as their parent, refused or deleted with it inside the commit's
transaction (core/parent_refs.py decides which).

One statement finds the children of every record the commit deletes; with a
cascade, one statement deletes the transcript and artifact rows and a second the
cascaded transcripts' entries (a new snapshot under READ COMMITTED, so it also
sees the entries of an append that committed while the first waited for a
transcript's row, as DeleteTranscript does). A cascaded artifact's blob goes with
the orphan sweep once no artifact names it. Each child gets a "delete" audit
entry beside the record's, written by the commit's PERSIST statement.

Creating a child does not read the records table, so a child created while its
record is being deleted can be left naming it: CheckIntegrity reports such
children (storage/postgres/parent_checks.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from strata_server.core.parent_refs import ChildRef, ParentDelete, ParentRef, cascading
from strata_server.core.writes import AuditEntry
from strata_server.storage.postgres.pool import Conn

_KEYS = "unnest(%(collections)s::text[], %(ids)s::text[]) AS k(collection, id)"

SELECT_CHILDREN = f"""
SELECT 'transcript', t.id, t.parent_collection, t.parent_id
FROM {_KEYS}
JOIN transcripts AS t ON t.namespace = %(namespace)s::text AND t.parent_id IS NOT NULL
 AND t.parent_collection = k.collection AND t.parent_id = k.id
UNION ALL
SELECT 'artifact', a.id, a.parent_collection, a.parent_id
FROM {_KEYS}
JOIN artifacts AS a ON a.namespace = %(namespace)s::text AND a.parent_id IS NOT NULL
 AND a.parent_collection = k.collection AND a.parent_id = k.id
"""
"""The children of the given records (each side one range of its parent index)."""

DELETE_CHILDREN = f"""
WITH gone_transcripts AS (
    DELETE FROM transcripts AS t USING {_KEYS}
    WHERE t.namespace = %(namespace)s::text AND t.parent_id IS NOT NULL
      AND t.parent_collection = k.collection AND t.parent_id = k.id
    RETURNING t.id, t.next_seq, t.parent_collection, t.parent_id
), gone_artifacts AS (
    DELETE FROM artifacts AS a USING {_KEYS}
    WHERE a.namespace = %(namespace)s::text AND a.parent_id IS NOT NULL
      AND a.parent_collection = k.collection AND a.parent_id = k.id
    RETURNING a.id, a.parent_collection, a.parent_id
)
SELECT 'transcript', id, next_seq - 1, parent_collection, parent_id FROM gone_transcripts
UNION ALL
SELECT 'artifact', id, 1, parent_collection, parent_id FROM gone_artifacts
"""
"""Delete the children of the given records: (kind, id, audit version, parent) of each."""

DELETE_ENTRIES = """
DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = ANY(%s::text[])
"""


def _keys(namespace: str, parents: list[ParentRef]) -> dict[str, object]:
    return {
        "namespace": namespace,
        "collections": [parent.collection for parent in parents],
        "ids": [parent.id for parent in parents],
    }


async def settle_children(
    conn: Conn, namespace: str, deletes: Mapping[ParentRef, ParentDelete]
) -> tuple[list[ChildRef], list[AuditEntry]]:
    """Refuse the commit (HasChildren) or delete the children of the records it
    deletes (inside the caller's transaction): the children deleted, and their
    audit entries."""
    cursor = await conn.execute(SELECT_CHILDREN, _keys(namespace, list(deletes)), prepare=True)
    children = [
        ChildRef(kind, id, ParentRef(collection, parent_id))
        for kind, id, collection, parent_id in await cursor.fetchall()
    ]
    if not children:
        return [], []
    parents = cascading(deletes, children)
    cursor = await conn.execute(DELETE_CHILDREN, _keys(namespace, parents), prepare=True)
    rows = await cursor.fetchall()
    gone = [ChildRef(kind, id, ParentRef(collection, pid)) for kind, id, _, collection, pid in rows]
    transcripts = [child.id for child in gone if child.kind == "transcript"]
    if transcripts:
        await conn.execute(DELETE_ENTRIES, (namespace, transcripts), prepare=True)
    audits = [AuditEntry("delete", kind, id, version, ()) for kind, id, version, _, _ in rows]
    return gone, audits
