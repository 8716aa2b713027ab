"""`CleanupRuns` on SQLite: the scheduled cleanup passes (table cleanup_runs,
migration 0016; statements in storage/cleanup_run_sql.py), so that every process
on the file can say how the last went."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from strata_server.core.retention_rules import KEEP_RUNS, CleanupRun, CleanupStep, steps_to_json
from strata_server.storage.cleanup_run_sql import cleanup_run_sql, run_from_row
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE, to_micros

SQL = cleanup_run_sql(SQLITE)


def _json(steps: tuple[CleanupStep, ...]) -> str:
    return json.dumps(steps_to_json(steps), separators=(",", ":"))


class SqliteCleanupRuns:
    """`CleanupRuns` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def start_run(self, replica: str, started: datetime) -> int:
        async with self._db.transaction() as tx:
            await tx.execute(SQL.abandon, (to_micros(datetime.now(UTC)),))
            [(run,)] = await tx.fetchall(SQL.start, (replica, to_micros(started)))
            await tx.execute(SQL.forget, (run, KEEP_RUNS))
        return int(run)

    async def run_progress(self, run: int, phase: str, done: int, total: int) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(SQL.progress, (phase, done, total, run))

    async def finish_run(
        self, run: int, finished: datetime, steps: tuple[CleanupStep, ...], error: str | None
    ) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(SQL.finish, (to_micros(finished), _json(steps), error, run))

    async def recent_runs(self, limit: int) -> list[CleanupRun]:
        rows = await self._db.fetchall(SQL.recent, (limit,))
        return [run_from_row(SQLITE, row) for row in rows]
