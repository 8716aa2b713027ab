"""services/cleanup_schedule.py in-process on the embedded shape's real storage: a
pass is recorded with its replica, steps and end, a failed pass with its error, and
the status shows the newest finished pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.errors import Unavailable
from strata_server.core.models import RecordRef
from strata_server.services.cleanup_schedule import CleanupSchedule
from strata_server.services.cleanup_service import Cleanup, Keep
from tests.ports.helpers import create


def schedule(storage: tuple[Any, Any], purge_expired: Any) -> CleanupSchedule:
    ports, blobs = storage
    cleanup = Cleanup(
        ports.retention,
        ports.cleanup,
        ports.artifacts,
        keep=Keep(completed_jobs=timedelta(days=7), idle=timedelta(hours=1)),
        purge_expired=purge_expired,
        blobs=blobs,
    )
    return CleanupSchedule(cleanup, ports.retention, ports.cleanup_runs, "here")


async def test_a_pass_is_recorded_with_its_steps(storage) -> None:
    async def purge_expired(limit: int) -> list[RecordRef]:
        return []

    scheduled = schedule(storage, purge_expired)
    assert (await scheduled.status()).last is None
    report = await scheduled.run_once()
    assert report is not None
    status = await scheduled.status()
    assert status.running is None and status.last is not None
    assert status.last.replica == "here" and status.last.error is None
    assert status.last.steps == report.steps
    assert [step.target for step in report.steps] == [
        "expired_records",
        "idle_transcripts",
        "default_completed_jobs",
        "default_audit_log",
        "default_request_log",
        "orphan_blobs",
    ]


async def test_a_failed_pass_is_recorded_with_its_error(storage) -> None:
    ports, _ = storage

    async def purge_expired(limit: int) -> list[RecordRef]:
        raise Unavailable("the database went away")

    # Something expired, so the step runs its purge, which fails.
    await create(ports, "default", "gone", {}, expire_time=datetime.now(UTC))
    scheduled = schedule(storage, purge_expired)
    assert await scheduled.run_once() is None
    last = (await scheduled.status()).last
    assert last is not None and last.finished is not None
    assert last.error == "the database went away" and last.steps == ()
