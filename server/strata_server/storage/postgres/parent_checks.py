"""CheckIntegrity's parent check on PostgreSQL (storage/parent_sql.py holds its
statements): children whose parent record is gone, and, with repair, their
parent cleared with its audit entry in one transaction. The clear re-checks that
the record is still missing, so a record committed meanwhile keeps its children."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from strata_server.core.integrity_findings import Finding
from strata_server.core.models import Progress
from strata_server.core.parent_refs import ChildRef
from strata_server.storage.parent_sql import check_parents, clear_params, parent_checks
from strata_server.storage.postgres.pool import Conn, Runner

CHECKS = parent_checks(lambda name: f"%({name})s", "::text")


async def check(
    runner: Runner, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """Progress, a finding per dangling child, and ("parents", children looked at)."""
    now = datetime.now(UTC)

    async def rows(statement: str) -> list[tuple[Any, ...]]:
        async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(statement, {"namespace": namespace, "now": now})
            return await cursor.fetchall()

        return await runner.run(fetch)

    async def clear(ns: str, child: ChildRef) -> bool:
        params = clear_params(ns, now, child)

        async def execute(conn: Conn) -> bool:
            cursor = await conn.execute(CHECKS.clear[child.kind], params)
            cleared = await cursor.fetchone()
            if cleared is None:
                return False
            await conn.execute(CHECKS.audit, {**params, "version": cleared[0]})
            return True

        return await runner.run(execute, transaction=True)

    async for event in check_parents(rows, CHECKS, clear if repair else None):
        yield event
