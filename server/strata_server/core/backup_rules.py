"""Backups of the embedded shape: how they are named, what one holds, which to keep.

A backup is a directory `strata-backup-<UTC time>` holding `strata.db` (the
SQLite online backup), `blobs/sha256/...` (every blob the copied rows name, the
layout of the data directory) and `backup.json` (this module's `BackupSummary`),
which is written last: a directory without it is not a backup.
"""

from __future__ import annotations

import json
from dataclasses import field
from datetime import UTC, datetime
from typing import Any

from strata_server.core.values import frozen

PREFIX = "strata-backup-"
PARTIAL = ".partial"
"""The suffix of a backup still being written (renamed away when complete)."""
MANIFEST = "backup.json"
DATABASE = "strata.db"


def backup_name(now: datetime) -> str:
    """The directory name of a backup made at `now`: sorts by time."""
    return PREFIX + now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def to_remove(names: list[str], keep: int) -> list[str]:
    """Of the backups `names` (complete ones), the oldest beyond the `keep` newest."""
    complete = sorted(name for name in names if name.startswith(PREFIX) and PARTIAL not in name)
    return complete[: max(0, len(complete) - keep)]


@frozen
class BackupSummary:
    """What one backup holds."""

    name: str
    created: datetime
    database_bytes: int
    blobs: int
    blob_bytes: int
    missing_blobs: list[str] = field(default_factory=list)
    """Blobs the copied rows name that the data directory no longer had: the
    artifacts whose content this backup cannot bring back."""

    def to_json(self) -> str:
        """The manifest's text."""
        return json.dumps(
            {
                "name": self.name,
                "created": self.created.isoformat(),
                "database_bytes": self.database_bytes,
                "blobs": self.blobs,
                "blob_bytes": self.blob_bytes,
                "missing_blobs": self.missing_blobs,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> BackupSummary:
        """The summary a manifest holds."""
        value: dict[str, Any] = json.loads(text)
        return cls(
            str(value["name"]),
            datetime.fromisoformat(value["created"]),
            int(value["database_bytes"]),
            int(value["blobs"]),
            int(value["blob_bytes"]),
            [str(sha) for sha in value.get("missing_blobs", [])],
        )
