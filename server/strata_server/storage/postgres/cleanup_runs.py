"""`CleanupRuns` on PostgreSQL: the scheduled cleanup passes (table cleanup_runs,
migration 0016; statements in storage/cleanup_run_sql.py), so that every replica
can say which one ran the last and how it went."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.types.json import Jsonb

from strata_server.core.retention_rules import KEEP_RUNS, CleanupRun, CleanupStep, steps_to_json
from strata_server.storage.cleanup_run_sql import cleanup_run_sql, run_from_row
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.pool import Conn, Runner, borrowing

SQL = cleanup_run_sql(POSTGRES)


class PostgresCleanupRuns:
    """`CleanupRuns` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing(transaction=True)
    async def start_run(self, conn: Conn, replica: str, started: datetime) -> int:
        await conn.execute(SQL.abandon, (datetime.now(UTC),))
        cursor = await conn.execute(SQL.start, (replica, started))
        row = await cursor.fetchone()
        assert row is not None
        await conn.execute(SQL.forget, (row[0], KEEP_RUNS))
        return int(row[0])

    @borrowing()
    async def run_progress(self, conn: Conn, run: int, phase: str, done: int, total: int) -> None:
        await conn.execute(SQL.progress, (phase, done, total, run))

    @borrowing()
    async def finish_run(
        self,
        conn: Conn,
        run: int,
        finished: datetime,
        steps: tuple[CleanupStep, ...],
        error: str | None,
    ) -> None:
        await conn.execute(SQL.finish, (finished, Jsonb(steps_to_json(steps)), error, run))

    @borrowing()
    async def recent_runs(self, conn: Conn, limit: int) -> list[CleanupRun]:
        cursor = await conn.execute(SQL.recent, (limit,))
        return [run_from_row(POSTGRES, row) for row in await cursor.fetchall()]
