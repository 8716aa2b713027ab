"""ListAuditEntries on SQLite: one fixed statement, newest first by seq."""

from __future__ import annotations

import json

from strata_server.core.models import AuditQuery, LoggedAudit, Page
from strata_server.storage.sqlite.connection import Connections, Row
from strata_server.storage.sqlite.dialect import from_micros, to_micros

LIST_AUDIT = """
SELECT seq, time, actor, action, entity, entity_id, version, changed_fields, request_id
FROM audit_log
WHERE namespace = :namespace
  AND (:entity IS NULL OR entity = :entity)
  AND (:entity_id IS NULL OR entity_id = :entity_id)
  AND (:actor IS NULL OR actor = :actor)
  AND (:action IS NULL OR action = :action)
  AND (:start IS NULL OR time >= :start)
  AND (:end IS NULL OR time < :end)
  AND (:before IS NULL OR seq < :before)
ORDER BY seq DESC
LIMIT :limit
"""


def audit_from_row(row: Row) -> LoggedAudit:
    """An audit entry from its columns in LIST_AUDIT's order (exports read them so)."""
    return LoggedAudit(
        seq=row[0],
        time=from_micros(row[1]),
        actor=row[2],
        action=row[3],
        entity=row[4],
        entity_id=row[5],
        version=row[6],
        changed_fields=tuple(json.loads(row[7])),
        request_id=row[8],
    )


async def list_audit(db: Connections, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
    rows = await db.fetchall(
        LIST_AUDIT,
        {
            "namespace": namespace,
            "entity": query.entity,
            "entity_id": query.entity_id,
            "actor": query.actor,
            "action": query.action,
            "start": to_micros(query.start_time) if query.start_time else None,
            "end": to_micros(query.end_time) if query.end_time else None,
            "before": query.before_seq,
            "limit": query.limit + 1,
        },
    )
    entries = [audit_from_row(row) for row in rows[: query.limit]]
    more = len(rows) > query.limit and entries
    return Page(entries, (entries[-1].seq,) if more else None)
