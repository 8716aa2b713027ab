"""Scheduled backups of the embedded shape (storage/sqlite/backups.py makes them).

Every `interval` seconds the process that holds LEADER_LOCK makes one, so the
workers of `strata serve --workers N` sharing a data directory make one per tick,
not N. `strata backup` makes one on demand with the same store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from strata_server import metrics
from strata_server.core.errors import StrataError
from strata_server.core.values import frozen
from strata_server.storage.ports import BackupStore

log = structlog.get_logger("strata.backup")

LEADER_LOCK = "backup"


@frozen
class ScheduledBackups:
    """Backups every `interval` seconds on the leading process."""

    store: BackupStore
    lead: Callable[[str], Awaitable[bool]]
    interval: float

    async def run_every(self) -> None:
        """Back up on each tick while this process leads; a failure is logged and
        the next tick tries again."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if await self.lead(LEADER_LOCK):
                    summary = await self.store.backup()
                    metrics.BACKUP_LAST_SUCCESS.set(summary.created.timestamp())
                    log.info(
                        "backup",
                        name=summary.name,
                        blobs=summary.blobs,
                        missing_blobs=len(summary.missing_blobs),
                    )
            except StrataError as error:
                log.warning("scheduled backup failed", error=error.message)
