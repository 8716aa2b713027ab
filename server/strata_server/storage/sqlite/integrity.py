"""CheckIntegrity's database checks on SQLite: the file itself (PRAGMA
quick_check), jobs whose columns contradict their state, declared indexes
without their database index, transcripts (transcript_checks.py) and children
whose parent record is gone (parent_checks.py). Repairs are
the safe ones core/integrity_findings.py names."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from strata_server.core.errors import StrataError
from strata_server.core.index_paths import index_name
from strata_server.core.integrity_findings import Finding
from strata_server.core.models import Progress
from strata_server.storage.job_checks import check_jobs, index_finding, job_checks
from strata_server.storage.sqlite import parent_checks, transcript_checks
from strata_server.storage.sqlite.connection import Connections, Row
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
        try:
            rows = await self._db.fetchall("PRAGMA quick_check")
        except StrataError as error:  # too damaged for quick_check to list the damage
            if not _corrupt(error):
                raise
            rows = [(error.message,)]
        for (message,) in rows:
            if message != "ok":
                yield Finding("database_file", "", "database", "", str(message), repairable=False)
        yield ("database_file", 1)

        async def fetch(statement: str) -> list[Row]:
            return await self._db.fetchall(statement, params)

        async def fix(ns: str, id: str, code: str) -> None:
            async with self._db.transaction() as tx:
                now = to_micros(datetime.now(UTC))
                await tx.execute(JOBS.repairs[code], {"namespace": ns, "id": id, "now": now})

        async for event in check_jobs(fetch, JOBS, fix if repair else None):
            yield event

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
            yield index_finding(ns, collection, keys, name, "missing", repaired)
        yield ("indexes", len(declared))

        async for event in transcript_checks.check(self._db, namespace, repair=repair):
            yield event

        async for event in parent_checks.check(self._db, namespace, repair=repair):
            yield event


def _corrupt(error: StrataError) -> bool:
    """Whether a driver error says the file is damaged (not busy or unreachable)."""
    cause = error.__cause__
    code = getattr(cause, "sqlite_errorcode", None) if isinstance(cause, sqlite3.Error) else None
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
