"""The last integrity report of each scope on PostgreSQL (migrations/postgres/0019)."""

from __future__ import annotations

from typing import LiteralString

from strata_server.core.integrity_findings import (
    IntegrityReport,
    report_from_json,
    report_to_json,
)
from strata_server.storage.postgres.pool import Conn, Runner, borrowing

SAVE: LiteralString = """
INSERT INTO integrity_runs (namespace, finish_time, report)
VALUES (%(scope)s, %(finished)s, %(report)s::jsonb)
ON CONFLICT (namespace) DO UPDATE SET
    finish_time = excluded.finish_time, report = excluded.report
"""

LAST: LiteralString = "SELECT report::text FROM integrity_runs WHERE namespace = %(scope)s"


class PostgresIntegrityLog:
    """`IntegrityLog` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing(writes=True)
    async def save_report(self, conn: Conn, scope: str, report: IntegrityReport) -> None:
        """Replace the scope's last report."""
        await conn.execute(
            SAVE, {"scope": scope, "finished": report.finished, "report": report_to_json(report)}
        )

    @borrowing()
    async def last_report(self, conn: Conn, scope: str) -> IntegrityReport | None:
        """The scope's last report, if any."""
        cursor = await conn.execute(LAST, {"scope": scope})
        row = await cursor.fetchone()
        return report_from_json(str(row[0])) if row else None
