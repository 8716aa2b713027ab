"""The scheduled cleanup passes' table (cleanup_runs, migration 0016) in SQL both
engines share, so that SQLite and PostgreSQL keep and report passes alike: only
the placeholder and how a time or JSON value is stored differ (the `Dialect`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strata_server.core.retention_rules import CleanupRun, steps_from_json
from strata_server.core.values import frozen
from strata_server.storage.sqlquery import Dialect


@frozen
class CleanupRunSql:
    """One engine's statements, with positional parameters in the order named."""

    abandon: str
    """Close every pass still open (its replica stopped mid-pass): (now)."""
    start: str
    """Open a pass, returning its id: (replica, start time)."""
    forget: str
    """Drop all but the last `KEEP_RUNS` passes: (new id, KEEP_RUNS)."""
    progress: str
    """(phase, done, total, id)."""
    finish: str
    """(end time, steps as JSON, error, id)."""
    recent: str
    """The last passes, newest first, as `run_from_row` reads them: (limit)."""


def cleanup_run_sql(dialect: Dialect) -> CleanupRunSql:
    """The statements with `dialect`'s placeholder."""
    p = dialect.placeholder
    return CleanupRunSql(
        abandon=(
            f"UPDATE cleanup_runs SET end_time = {p},"
            " error = 'abandoned: replica ' || replica || ' stopped during the pass'"
            " WHERE end_time IS NULL"
        ),
        start=(
            "INSERT INTO cleanup_runs (replica, start_time, steps)"
            f" VALUES ({p}, {p}, '[]') RETURNING id"
        ),
        forget=f"DELETE FROM cleanup_runs WHERE id <= {p} - {p}",
        progress=f"UPDATE cleanup_runs SET phase = {p}, done = {p}, total = {p} WHERE id = {p}",
        finish=(
            f"UPDATE cleanup_runs SET end_time = {p}, steps = {p},"
            f" phase = '', done = 0, total = 0, error = {p} WHERE id = {p}"
        ),
        recent=(
            "SELECT replica, start_time, end_time, steps, phase, done, total, error"
            f" FROM cleanup_runs ORDER BY id DESC LIMIT {p}"
        ),
    )


def run_from_row(dialect: Dialect, row: Sequence[Any]) -> CleanupRun:
    """A row of `CleanupRunSql.recent`."""
    replica, start, end, steps, phase, done, total, error = row
    return CleanupRun(
        str(replica),
        dialect.time_value(start),
        None if end is None else dialect.time_value(end),
        steps_from_json(dialect.json_value(steps)),
        str(phase),
        int(done),
        int(total),
        None if error is None else str(error),
    )
