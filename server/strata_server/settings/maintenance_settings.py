"""What the server does in the background: how often cleanup runs, how long finished
jobs, unreferenced blobs and the audit and request logs are kept, when idle
transcripts are sealed, and how often queue metrics are read.

A group of `config.Settings` (see the package docstring).
"""

from __future__ import annotations

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
