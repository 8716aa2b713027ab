"""What the server does in the background: how often cleanup runs, how long finished
jobs and unreferenced blobs are kept, and how often queue metrics are read.

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
    queue_metrics_seconds: float = Field(
        10.0, gt=0, description="how often the queue depth and age metrics are read"
    )
    blob_sweep_grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="how old a blob no artifact references must be before cleanup removes it",
    )
