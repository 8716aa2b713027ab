"""A record delete's children on SQLite: the transcripts and artifacts naming a
deleted record as their parent, refused or deleted with it inside the commit's
transaction (core/parent_refs.py decides which).

A cascaded transcript goes as DeleteTranscript removes one (its search index
entries, its entries, its row); a cascaded artifact loses its row, and its blob
goes with the orphan sweep once no artifact names it. Each child gets a "delete"
audit entry beside the record's, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from strata_server.core.parent_refs import ChildRef, ParentDelete, ParentRef, cascading
from strata_server.core.writes import AuditEntry
from strata_server.storage.sqlite.connection import Transaction
from strata_server.storage.sqlite.transcript_queries import (
    DELETE_ENTRIES,
    DELETE_TRANSCRIPT,
    UNINDEX_ENTRIES,
)

SELECT_CHILDREN = """
SELECT 'transcript', id FROM transcripts
WHERE namespace = ?1 AND parent_collection = ?2 AND parent_id = ?3
UNION ALL
SELECT 'artifact', id FROM artifacts
WHERE namespace = ?1 AND parent_collection = ?2 AND parent_id = ?3
"""
"""One record's children, transcripts first (each side one range of its parent index)."""

DELETE_ARTIFACT = "DELETE FROM artifacts WHERE namespace = ? AND id = ?"


async def settle_children(
    tx: Transaction, namespace: str, deletes: Mapping[ParentRef, ParentDelete]
) -> tuple[list[ChildRef], list[AuditEntry]]:
    """Refuse the commit (HasChildren) or delete the children of the records it
    deletes: the children deleted, and their audit entries."""
    children: list[ChildRef] = []
    for parent in deletes:
        rows = await tx.fetchall(SELECT_CHILDREN, (namespace, parent.collection, parent.id))
        children += [ChildRef(kind, id, parent) for kind, id in rows]
    if not children:
        return [], []
    cascaded = set(cascading(deletes, children))
    gone = [child for child in children if child.parent in cascaded]
    audits: list[AuditEntry] = []
    for child in gone:
        if child.kind == "transcript":
            await tx.execute(UNINDEX_ENTRIES, (namespace, child.id))
            await tx.execute(DELETE_ENTRIES, (namespace, child.id))
            [(next_seq,)] = await tx.fetchall(DELETE_TRANSCRIPT, (namespace, child.id))
            audits.append(AuditEntry("delete", "transcript", child.id, next_seq - 1, ()))
        else:
            await tx.execute(DELETE_ARTIFACT, (namespace, child.id))
            audits.append(AuditEntry("delete", "artifact", child.id, 1, ()))
    return gone, audits
