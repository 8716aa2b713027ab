"""What the server does in the background: how often cleanup runs, how long finished
jobs, unreferenced blobs and the audit and request logs are kept, when idle
transcripts are sealed, how often queue metrics are read, and the scheduled
integrity checks and (embedded shape) backups.

A group of `config.Settings` (see the package docstring).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class MaintenanceSettings(BaseModel):
    """The background work settings."""

    cleanup_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="how often the background cleanup runs (expired records, retention "
        "policies, completed jobs), on one server process at a time",
    )
    completed_job_retention_seconds: float = Field(
        7 * 24 * 3600.0, ge=0, description="how long completed jobs are kept before purging"
    )
    audit_retention_seconds: float = Field(
        90 * 24 * 3600.0,
        ge=0,
        description="how long audit entries are kept in namespaces without an audit_log "
        "retention policy (0: for ever)",
    )
    request_log_retention_seconds: float = Field(
        24 * 3600.0,
        ge=0,
        description="how long a request_id is remembered for idempotent retries in namespaces "
        "without a request_log retention policy (0: for ever); a retry after this is applied "
        "again",
    )
    transcript_auto_seal_seconds: float = Field(
        0.0,
        ge=0,
        description="seal open transcripts with no append for this long at the next cleanup "
        "(0: never)",
    )
    replica_name: str = Field(
        "",
        description="this server's name in the cleanup status (GetCleanupStatus); empty: "
        "host name and process id",
    )
    queue_metrics_seconds: float = Field(
        10.0, gt=0, description="how often the queue depth and age metrics are read"
    )
    blob_sweep_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="how old a blob no artifact references must be before cleanup removes it",
    )
    integrity_interval_seconds: float = Field(
        0.0,
        ge=0,
        description="how often the server checks the integrity of every namespace in the "
        "background, on one server process at a time (GetIntegrityStatus shows the last "
        "report); 0: never",
    )
    integrity_sample_percent: float = Field(
        1.0,
        ge=0,
        le=100,
        description="the percent of blobs whose content a scheduled integrity check "
        "re-hashes (every compressed blob's frame index is read anyway)",
    )
    backup_interval_seconds: float = Field(
        0.0,
        ge=0,
        description="how often the embedded shape backs up its SQLite file and blobs "
        "online (`strata backup` makes one on demand); 0: never",
    )
    backup_keep: int = Field(
        7, ge=1, description="how many backups to keep; older ones are removed"
    )
    backup_dir: Path | None = Field(
        None,
        description="where backups go (default: backups/ under data_dir); put it on another disk",
    )
