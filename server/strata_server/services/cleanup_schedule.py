"""The background cleanup: one pass over every namespace every interval, on one
process among all that share the database, and the record of each pass that
AdminService.GetCleanupStatus reads on any of them.

The pass runs on the process that holds `RetentionStore.lead(LEADER_LOCK)` (a
PostgreSQL session advisory lock, or a file lock beside a SQLite file). It keeps
the lock while it lives, so passes do not run once per replica; when it dies,
another takes over at its next tick. Each pass is written to the database as it
goes (`CleanupRuns`): which replica runs it, the step it is on (at most once a
PROGRESS_SECONDS, so a long step costs a handful of writes), and at its end what
each step removed or the error that stopped it. A pass whose replica died is
closed, with an error naming that replica, when the next one starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import UTC, datetime

import structlog

from strata_server import metrics
from strata_server.core.models import Progress
from strata_server.core.retention_rules import CleanupReport, CleanupRun, CleanupStep
from strata_server.core.values import frozen
from strata_server.services.cleanup_service import Cleanup
from strata_server.storage.ports import CleanupRuns, RetentionStore

log = structlog.get_logger("strata.cleanup")

LEADER_LOCK = "cleanup"
PROGRESS_SECONDS = 1.0
"""How often a running pass writes how far it has come."""


def default_replica() -> str:
    """This process's name when STRATA_REPLICA_NAME is empty: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@frozen
class CleanupStatus:
    """What GetCleanupStatus shows: the pass running now (if any), and the newest
    finished one."""

    running: CleanupRun | None
    last: CleanupRun | None


@frozen
class CleanupSchedule:
    """Runs `cleanup` every interval while this process leads (see the module
    docstring), recording each pass in `runs` under the name `replica`."""

    cleanup: Cleanup
    retention: RetentionStore
    runs: CleanupRuns
    replica: str

    async def run_every(self, interval: float) -> None:
        """Every `interval` seconds, a pass if this process leads. A failed pass is
        logged and recorded; the next tick runs again."""
        while True:
            await asyncio.sleep(interval)
            leads = await self.retention.lead(LEADER_LOCK)
            metrics.CLEANUP_LEADER.set(1 if leads else 0)
            if leads:
                await self.run_once()

    async def run_once(self) -> CleanupReport | None:
        """One recorded pass over every namespace; its report, or None when it failed
        (the error is in its record)."""
        started = time.monotonic()
        report: CleanupReport | None = None
        steps: tuple[CleanupStep, ...] = ()
        error: str | None = None
        run: int | None = None
        metrics.CLEANUP_IN_PROGRESS.set(1)
        try:
            run = await self.runs.start_run(self.replica, _now())
            written = 0.0
            async for event in self.cleanup.run(namespace=None, dry_run=False, trigger="scheduler"):
                if isinstance(event, CleanupReport):
                    report = event
                    steps = event.steps
                elif time.monotonic() - written >= PROGRESS_SECONDS:
                    await self._progress(run, event)
                    written = time.monotonic()
        except Exception as failure:  # recorded and logged; the scheduler lives on
            error = getattr(failure, "message", None) or repr(failure)
            log.warning("scheduled cleanup failed", error=error)
        finally:
            metrics.CLEANUP_IN_PROGRESS.set(0)
            metrics.CLEANUP_LAST_DURATION.set(time.monotonic() - started)
        if run is not None:
            try:
                await self.runs.finish_run(run, _now(), steps, error)
            except Exception as failure:
                log.warning("cleanup pass not recorded", error=repr(failure))
        if report is not None and report.total:
            log.info("cleanup", removed=report.total, steps=len(report.steps))
        return report

    async def _progress(self, run: int, progress: Progress) -> None:
        await self.runs.run_progress(run, progress.phase, progress.done, progress.total)

    async def status(self) -> CleanupStatus:
        """The pass running now and the newest finished one, on any replica."""
        recent = await self.runs.recent_runs(2)
        running = recent[0] if recent and recent[0].finished is None else None
        last = next((run for run in recent if run.finished is not None), None)
        return CleanupStatus(running, last)


def _now() -> datetime:
    return datetime.now(UTC)
