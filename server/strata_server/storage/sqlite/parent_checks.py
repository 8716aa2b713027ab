"""CheckIntegrity's parent check on SQLite (storage/parent_sql.py holds its
statements): children whose parent record is gone, and, with repair, their
parent cleared. Each repair re-checks inside its write transaction (the one
writer), so a record created meanwhile keeps its children."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from strata_server.core.integrity_findings import Finding
from strata_server.core.models import Progress
from strata_server.core.parent_refs import ChildRef
from strata_server.storage.parent_sql import check_parents, clear_params, parent_checks
from strata_server.storage.sqlite.connection import Connections, Row
from strata_server.storage.sqlite.dialect import to_micros

CHECKS = parent_checks(lambda name: f":{name}", "")


async def check(
    db: Connections, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """Progress, a finding per dangling child, and ("parents", children looked at)."""
    now = to_micros(datetime.now(UTC))

    async def rows(statement: str) -> list[Row]:
        return await db.fetchall(statement, {"namespace": namespace, "now": now})

    async def clear(ns: str, child: ChildRef) -> bool:
        params = clear_params(ns, now, child)
        async with db.transaction() as tx:
            cleared = await tx.fetchall(CHECKS.clear[child.kind], params)
            if not cleared:
                return False
            await tx.execute(CHECKS.audit, {**params, "version": cleared[0][0]})
        return True

    async for event in check_parents(rows, CHECKS, clear if repair else None):
        yield event
