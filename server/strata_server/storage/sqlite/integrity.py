"""CheckIntegrity's database checks on SQLite: the file itself (PRAGMA
quick_check), jobs whose columns contradict their state, declared indexes
without their database index, and transcripts (transcript_checks.py). Repairs are
the safe ones core/integrity_findings.py names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from strata_server.core.index_paths import field_name, index_name
from strata_server.core.integrity_findings import JOB_PROBLEMS, Finding
from strata_server.core.models import Progress
from strata_server.storage.job_checks import job_checks
from strata_server.storage.sqlite import transcript_checks
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import to_micros
from strata_server.storage.sqlite.indexes import create_sql

JOBS = job_checks(lambda name: f":{name}", "", ":now")

DECLARED = """
SELECT d.namespace, d.collection, d.path, d.index_name,
       EXISTS (SELECT 1 FROM sqlite_master AS m WHERE m.type = 'index' AND m.name = d.index_name)
FROM record_indexes AS d
WHERE :namespace IS NULL OR d.namespace = :namespace
ORDER BY d.namespace, d.collection, d.path
"""


class SqliteIntegrity:
    """`IntegrityStore` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """Progress, findings, and ("check", things looked at) per check."""
        params = {"namespace": namespace}
        yield Progress("database file", 0, 1, "checks")
        rows = await self._db.fetchall("PRAGMA quick_check")
        for (message,) in rows:
            if message != "ok":
                yield Finding("database_file", "", "database", "", str(message), repairable=False)
        yield ("database_file", 1)

        [(total,)] = await self._db.fetchall(JOBS.count, params)
        yield Progress("jobs", 0, total, "jobs")
        for ns, id, code in await self._db.fetchall(JOBS.bad, params):
            repaired = False
            if repair:
                async with self._db.transaction() as tx:
                    now = to_micros(datetime.now(UTC))
                    await tx.execute(JOBS.repairs[code], {"namespace": ns, "id": id, "now": now})
                repaired = True
            yield Finding("jobs", ns, "job", id, JOB_PROBLEMS[code], True, repaired)
        yield Progress("jobs", total, total, "jobs")
        yield ("jobs", total)

        declared = await self._db.fetchall(DECLARED, params)
        yield Progress("indexes", 0, len(declared), "indexes")
        for ns, collection, path, name, exists in declared:
            if exists:
                continue
            keys = tuple(path.split("."))
            repaired = False
            if repair and name == index_name(keys):
                async with self._db.transaction() as tx:
                    await tx.execute(create_sql(keys))
                repaired = True
            yield Finding(
                "indexes",
                ns,
                "index",
                f"{collection}/{field_name(keys)}",
                f"declared, but its database index {name} is missing",
                True,
                repaired,
            )
        yield ("indexes", len(declared))

        async for event in transcript_checks.check(self._db, namespace, repair=repair):
            yield event
