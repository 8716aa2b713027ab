"""CheckIntegrity's database checks on PostgreSQL: jobs whose columns contradict
their state, declared indexes whose database index is missing or invalid (a
build that failed), and transcripts (transcript_checks.py). Repairs are the safe
ones core/integrity_findings.py names; an index is rebuilt with CREATE INDEX CONCURRENTLY,
as CreateIndex builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from strata_server.core.index_paths import field_name
from strata_server.core.integrity_findings import JOB_PROBLEMS, Finding
from strata_server.core.models import Progress
from strata_server.storage.job_checks import job_checks
from strata_server.storage.postgres import transcript_checks
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

        [(total,)] = await rows(JOBS.count)
        yield Progress("jobs", 0, total, "jobs")
        for ns, id, code in await rows(JOBS.bad):
            repaired = False
            if repair:

                async def fix(conn: Conn, ns: str = ns, id: str = id, code: str = code) -> None:
                    await conn.execute(JOBS.repairs[code], {"namespace": ns, "id": id})

                await run(fix)
                repaired = True
            yield Finding("jobs", ns, "job", id, JOB_PROBLEMS[code], True, repaired)
        yield Progress("jobs", total, total, "jobs")
        yield ("jobs", total)

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
            yield Finding(
                "indexes",
                ns,
                "index",
                f"{collection}/{field_name(keys)}",
                f"declared, but its database index {name} is {state}",
                True,
                repaired,
            )
        yield ("indexes", len(declared))

        async for event in transcript_checks.check(self.runner, namespace, repair=repair):
            yield event
