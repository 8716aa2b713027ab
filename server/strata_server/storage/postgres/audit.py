"""The audit log's reads on PostgreSQL (the statement: storage/audit_sql.py).

It runs unprepared, so each call is planned for the filters it has.
"""

from __future__ import annotations

from strata_server.core.models import AuditQuery, LoggedAudit, Page
from strata_server.storage import audit_sql
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.pool import Conn, Runner, borrowing


class PostgresAudit:
    """`AuditLog` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def list_audit(self, conn: Conn, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        sql, params = audit_sql.list_audit(POSTGRES, namespace, query)
        cursor = await conn.execute(sql.encode(), params, prepare=False)
        return audit_sql.audit_page(POSTGRES, await cursor.fetchall(), query.limit)
