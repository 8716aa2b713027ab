"""`CleanupRuns` on SQLite: the scheduled cleanup passes (table cleanup_runs,
migration 0016), so that every process on the file can say how the last went."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from strata_server.core.retention_rules import (
    KEEP_RUNS,
    CleanupRun,
    CleanupStep,
    steps_from_json,
    steps_to_json,
)
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import from_micros, to_micros

ABANDON = """
UPDATE cleanup_runs
SET end_time = ?, error = 'abandoned: replica ' || replica || ' stopped during the pass'
WHERE end_time IS NULL
"""
START = "INSERT INTO cleanup_runs (replica, start_time, steps) VALUES (?, ?, '[]') RETURNING id"
FORGET = "DELETE FROM cleanup_runs WHERE id <= ? - ?"
PROGRESS = "UPDATE cleanup_runs SET phase = ?, done = ?, total = ? WHERE id = ?"
FINISH = """
UPDATE cleanup_runs SET end_time = ?, steps = ?, phase = '', done = 0, total = 0, error = ?
WHERE id = ?
"""
RECENT = """
SELECT replica, start_time, end_time, steps, phase, done, total, error
FROM cleanup_runs ORDER BY id DESC LIMIT ?
"""


def _json(steps: tuple[CleanupStep, ...]) -> str:
    return json.dumps(steps_to_json(steps), separators=(",", ":"))


class SqliteCleanupRuns:
    """`CleanupRuns` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def start_run(self, replica: str, started: datetime) -> int:
        async with self._db.transaction() as tx:
            await tx.execute(ABANDON, (to_micros(datetime.now(UTC)),))
            [(run,)] = await tx.fetchall(START, (replica, to_micros(started)))
            await tx.execute(FORGET, (run, KEEP_RUNS))
        return int(run)

    async def run_progress(self, run: int, phase: str, done: int, total: int) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(PROGRESS, (phase, done, total, run))

    async def finish_run(
        self, run: int, finished: datetime, steps: tuple[CleanupStep, ...], error: str | None
    ) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(FINISH, (to_micros(finished), _json(steps), error, run))

    async def recent_runs(self, limit: int) -> list[CleanupRun]:
        return [
            CleanupRun(
                str(replica),
                from_micros(start),
                None if end is None else from_micros(end),
                steps_from_json(json.loads(steps)),
                str(phase),
                int(done),
                int(total),
                None if error is None else str(error),
            )
            for replica, start, end, steps, phase, done, total, error in await self._db.fetchall(
                RECENT, (limit,)
            )
        ]
