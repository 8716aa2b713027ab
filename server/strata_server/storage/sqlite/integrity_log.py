"""The last integrity report of each scope on SQLite (migrations/sqlite/0019)."""

from __future__ import annotations

from strata_server.core.integrity_findings import (
    IntegrityReport,
    report_from_json,
    report_to_json,
)
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import to_micros

SAVE = """
INSERT INTO integrity_runs (namespace, finish_time, report) VALUES (?, ?, ?)
ON CONFLICT (namespace) DO UPDATE SET
    finish_time = excluded.finish_time, report = excluded.report
"""

LAST = "SELECT report FROM integrity_runs WHERE namespace = ?"


class SqliteIntegrityLog:
    """`IntegrityLog` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def save_report(self, scope: str, report: IntegrityReport) -> None:
        """Replace the scope's last report."""
        async with self._db.transaction() as tx:
            await tx.execute(SAVE, (scope, to_micros(report.finished), report_to_json(report)))

    async def last_report(self, scope: str) -> IntegrityReport | None:
        """The scope's last report, if any."""
        rows = await self._db.fetchall(LAST, (scope,))
        return report_from_json(str(rows[0][0])) if rows else None
