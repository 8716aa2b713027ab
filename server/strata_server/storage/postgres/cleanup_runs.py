"""`CleanupRuns` on PostgreSQL: the scheduled cleanup passes (table cleanup_runs,
migration 0016), so that every replica can say which one ran the last and how it
went."""

from __future__ import annotations

from datetime import datetime

from psycopg.types.json import Jsonb

from strata_server.core.retention_rules import (
    KEEP_RUNS,
    CleanupRun,
    CleanupStep,
    steps_from_json,
    steps_to_json,
)
from strata_server.storage.postgres.pool import Conn, Runner, borrowing

ABANDON = """
UPDATE cleanup_runs
SET end_time = now(), error = 'abandoned: replica ' || replica || ' stopped during the pass'
WHERE end_time IS NULL
"""
START = """
INSERT INTO cleanup_runs (replica, start_time, steps) VALUES (%s, %s, '[]'::jsonb) RETURNING id
"""
FORGET = "DELETE FROM cleanup_runs WHERE id <= %s - %s"
PROGRESS = "UPDATE cleanup_runs SET phase = %s, done = %s, total = %s WHERE id = %s"
FINISH = """
UPDATE cleanup_runs SET end_time = %s, steps = %s, phase = '', done = 0, total = 0, error = %s
WHERE id = %s
"""
RECENT = """
SELECT replica, start_time, end_time, steps, phase, done, total, error
FROM cleanup_runs ORDER BY id DESC LIMIT %s
"""


class PostgresCleanupRuns:
    """`CleanupRuns` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing(transaction=True)
    async def start_run(self, conn: Conn, replica: str, started: datetime) -> int:
        await conn.execute(ABANDON)
        cursor = await conn.execute(START, (replica, started))
        row = await cursor.fetchone()
        assert row is not None
        await conn.execute(FORGET, (row[0], KEEP_RUNS))
        return int(row[0])

    @borrowing()
    async def run_progress(self, conn: Conn, run: int, phase: str, done: int, total: int) -> None:
        await conn.execute(PROGRESS, (phase, done, total, run))

    @borrowing()
    async def finish_run(
        self,
        conn: Conn,
        run: int,
        finished: datetime,
        steps: tuple[CleanupStep, ...],
        error: str | None,
    ) -> None:
        await conn.execute(FINISH, (finished, Jsonb(steps_to_json(steps)), error, run))

    @borrowing()
    async def recent_runs(self, conn: Conn, limit: int) -> list[CleanupRun]:
        cursor = await conn.execute(RECENT, (limit,))
        return [
            CleanupRun(
                row[0],
                row[1],
                row[2],
                steps_from_json(row[3]),
                row[4],
                int(row[5]),
                int(row[6]),
                row[7],
            )
            for row in await cursor.fetchall()
        ]
