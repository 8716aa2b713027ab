"""The backup port: online backups of the embedded shape's whole state (the
production shape is backed up with PostgreSQL's and the bucket's own tools)."""

from __future__ import annotations

from typing import Protocol

from strata_server.core.backup_rules import BackupSummary


class BackupStore(Protocol):
    """Makes consistent backups of the database and its blobs, kept by count."""

    async def backup(self) -> BackupSummary:
        """Make one backup now and remove the oldest beyond the count kept;
        Unavailable when the disk fails."""
        ...
