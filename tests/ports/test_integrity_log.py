"""The IntegrityLog port on both engines: each scope keeps its last report, whole
(findings with their bytes, counts, times), and another process on the same
database reads the same one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strata_server.core.integrity_findings import Finding, IntegrityReport
from strata_server.storage.composite import Storage
from tests.ports.conftest import Reopen


def report(minute: int, *findings: Finding) -> IntegrityReport:
    started = datetime(2026, 12, 7, 15, minute, tzinfo=UTC)
    return IntegrityReport(
        findings,
        (("jobs", 3), ("blobs", 2)),
        False,
        started,
        started + timedelta(seconds=1, microseconds=250),
        unreferenced_bytes=sum(f.bytes for f in findings),
    )


async def test_each_scope_keeps_its_last_report(storage: Storage, reopen: Reopen) -> None:
    log = storage.integrity_log
    assert await log.last_report("*") is None
    orphan = Finding("blobs", "", "blob", "ab" * 32, "no artifact references it", True, bytes=5000)
    first, second = report(1), report(2, orphan)
    await log.save_report("*", first)
    await log.save_report("*", second)
    await log.save_report("tenant-a", first)
    assert await log.last_report("*") == second
    assert await log.last_report("tenant-a") == first
    assert await log.last_report("tenant-b") is None
    other = await reopen()
    assert await other.integrity_log.last_report("*") == second
