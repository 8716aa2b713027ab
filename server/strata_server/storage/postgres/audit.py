"""ListAuditEntries on PostgreSQL: one statement, newest first by seq.

Each optional filter is `(param IS NULL OR column = param)`, so there is one fixed
text; it runs unprepared, so each call is planned for the filters it has (a generic
plan would ignore which ones are NULL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strata_server.core.models import AuditQuery, LoggedAudit, Page
from strata_server.storage.postgres.pool import Conn

LIST_AUDIT = """
SELECT seq, time, actor, action, entity, entity_id, version, changed_fields, request_id
FROM audit_log
WHERE namespace = %(namespace)s
  AND (%(entity)s::text IS NULL OR entity = %(entity)s::text)
  AND (%(entity_id)s::text IS NULL OR entity_id = %(entity_id)s::text)
  AND (%(actor)s::text IS NULL OR actor = %(actor)s::text)
  AND (%(action)s::text IS NULL OR action = %(action)s::text)
  AND (%(start)s::timestamptz IS NULL OR time >= %(start)s::timestamptz)
  AND (%(end)s::timestamptz IS NULL OR time < %(end)s::timestamptz)
  AND (%(before)s::bigint IS NULL OR seq < %(before)s::bigint)
ORDER BY seq DESC
LIMIT %(limit)s
"""


def audit_from_row(row: Sequence[Any]) -> LoggedAudit:
    """An audit entry from its columns in LIST_AUDIT's order (exports read them so)."""
    return LoggedAudit(
        seq=row[0],
        time=row[1],
        actor=row[2],
        action=row[3],
        entity=row[4],
        entity_id=row[5],
        version=row[6],
        changed_fields=tuple(row[7]),
        request_id=row[8],
    )


async def list_audit(conn: Conn, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
    cursor = await conn.execute(
        LIST_AUDIT,
        {
            "namespace": namespace,
            "entity": query.entity,
            "entity_id": query.entity_id,
            "actor": query.actor,
            "action": query.action,
            "start": query.start_time,
            "end": query.end_time,
            "before": query.before_seq,
            "limit": query.limit + 1,
        },
        prepare=False,
    )
    rows = await cursor.fetchall()
    entries = [audit_from_row(row) for row in rows[: query.limit]]
    more = len(rows) > query.limit and entries
    return Page(entries, (entries[-1].seq,) if more else None)
