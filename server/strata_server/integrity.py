"""Integrity runs: what AdminService.CheckIntegrity checks, in order, and the
report it streams at the end (core/integrity.py says what a finding is and which
repairs are safe)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from strata_server import metrics
from strata_server.core.integrity import Finding, IntegrityReport
from strata_server.core.models import Progress
from strata_server.storage.ports import Database


async def check_integrity(
    database: Database, namespace: str | None, *, repair: bool
) -> AsyncIterator[Progress | IntegrityReport]:
    """Progress messages, then the report; `namespace` None: every namespace."""
    started = datetime.now(UTC)
    findings: list[Finding] = []
    checked: list[tuple[str, int]] = []
    async for event in database.check_integrity(namespace, repair=repair):
        if isinstance(event, Progress):
            yield event
        elif isinstance(event, Finding):
            findings.append(event)
        else:
            checked.append(event)
    report = IntegrityReport(tuple(findings), tuple(checked), repair, started, datetime.now(UTC))
    for check, _ in checked:
        left = sum(1 for f in findings if f.check == check and not f.repaired)
        metrics.INTEGRITY_PROBLEMS.labels(check).set(left)
    metrics.INTEGRITY_LAST_RUN.set(report.finished.timestamp())
    yield report
