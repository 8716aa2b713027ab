"""The audit log's reads on SQLite (the statement: storage/audit_sql.py)."""

from __future__ import annotations

from strata_server.core.models import AuditQuery, LoggedAudit, Page
from strata_server.storage import audit_sql
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE


class SqliteAudit:
    """`AuditLog` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        sql, params = audit_sql.list_audit(SQLITE, namespace, query)
        return audit_sql.audit_page(SQLITE, await self._db.fetchall(sql, params), query.limit)
