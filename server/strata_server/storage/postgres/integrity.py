"""CheckIntegrity's database checks on PostgreSQL: jobs whose columns contradict
their state, declared indexes whose database index is missing or invalid (a
build that failed), transcripts (transcript_checks.py) and children whose parent
record is gone (parent_checks.py). Repairs are the safe
ones core/integrity_findings.py names; an index is rebuilt with CREATE INDEX CONCURRENTLY,
as CreateIndex builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from strata_server.core.integrity_findings import Finding
from strata_server.core.models import Progress
from strata_server.storage.job_checks import check_jobs, index_finding, job_checks
from strata_server.storage.postgres import parent_checks, transcript_checks
from strata_server.storage.postgres.pool import Conn, Runner

JOBS = job_checks(lambda name: f"%({name})s", "::text", "now()")

DECLARED = """
SELECT d.namespace, d.collection, d.path, d.index_name,
       coalesce(i.indisvalid AND i.indisready, FALSE), i.indexrelid IS NOT NULL
FROM record_indexes AS d
LEFT JOIN pg_index AS i ON i.indexrelid = to_regclass(quote_ident(d.index_name))
WHERE %(namespace)s::text IS NULL OR d.namespace = %(namespace)s
ORDER BY d.namespace, d.collection, d.path
"""


class PostgresIntegrity:
    """`IntegrityStore` over PostgreSQL; `rebuild` builds a path's index (as
    CreateIndex does)."""

    def __init__(
        self, runner: Runner, rebuild: Callable[[tuple[str, ...]], Awaitable[None]]
    ) -> None:
        self.runner = runner
        self._rebuild = rebuild

    async def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """Jobs, declared indexes, transcripts."""
        run = self.runner.run
        params = {"namespace": namespace}

        async def rows(statement: str) -> list[tuple[Any, ...]]:
            async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
                cursor = await conn.execute(statement, params)
                return await cursor.fetchall()

            return await run(fetch)

        async def fix(ns: str, id: str, code: str) -> None:
            async def execute(conn: Conn) -> None:
                await conn.execute(JOBS.repairs[code], {"namespace": ns, "id": id})

            await run(execute)

        async for event in check_jobs(rows, JOBS, fix if repair else None):
            yield event

        declared = await rows(DECLARED)
        yield Progress("indexes", 0, len(declared), "indexes")
        for ns, collection, path, name, valid, exists in declared:
            if valid:
                continue
            keys = tuple(path.split("."))
            repaired = False
            if repair:
                await self._rebuild(keys)
                repaired = True
            state = "invalid (a build that failed)" if exists else "missing"
            yield index_finding(ns, collection, keys, name, state, repaired)
        yield ("indexes", len(declared))

        async for event in transcript_checks.check(self.runner, namespace, repair=repair):
            yield event

        async for event in parent_checks.check(self.runner, namespace, repair=repair):
            yield event
