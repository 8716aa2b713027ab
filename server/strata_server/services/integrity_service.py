"""Integrity runs: what AdminService.CheckIntegrity checks, in order, and the
report it streams at the end (core/integrity_findings.py says what a finding is and which
repairs are safe). The database checks its own rows (`IntegrityStore`); the blobs
are checked against the artifact rows here (services/blob_gc.py).

Every run's report is kept as the last of its scope (`IntegrityLog`: a namespace,
or "*" for every namespace), which GetIntegrityStatus shows. The scheduler
(`IntegrityCheck.run_every`) checks every namespace on one process at a time, the
one holding the LEADER_LOCK, as cleanup does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY
from datetime import UTC, datetime, timedelta

import structlog

from strata_server import metrics
from strata_server.core.artifact_rules import IntegrityReport as BlobReport
from strata_server.core.errors import StrataError
from strata_server.core.integrity_findings import Finding, IntegrityReport
from strata_server.core.models import Progress
from strata_server.core.values import frozen
from strata_server.services import blob_gc
from strata_server.storage.ports import ArtifactStore, BlobStore, IntegrityLog, IntegrityStore

log = structlog.get_logger("strata.integrity")

LEADER_LOCK = "integrity"
EVERY = "*"
"""The scope of a check of every namespace."""

Lead = Callable[[str], Awaitable[bool]]


async def _no_segments() -> dict[str, list[tuple[str, str]]]:
    return {}


async def _always(name: str) -> bool:
    return True


@frozen
class IntegrityCheck:
    """Runs CheckIntegrity over the database's checks and, given a blob store, the
    blobs (orphans are repaired by the sweep once older than `blob_grace`)."""

    integrity: IntegrityStore
    artifacts: ArtifactStore
    blobs: BlobStore | None = None
    _: KW_ONLY
    blob_grace: timedelta = timedelta(hours=1)
    reports: IntegrityLog | None = None
    lead: Lead = _always
    interval: float = 0.0
    """Seconds between scheduled checks of every namespace (`run_every`); 0: none."""
    sample: float = 0.0
    segment_blobs: Callable[[], Awaitable[dict[str, list[tuple[str, str]]]]] = _no_segments
    """The blobs archived transcripts' segments name (not orphans)."""
    """The fraction of blobs whose content a scheduled check re-hashes."""

    async def run(
        self,
        namespace: str | None,
        *,
        repair: bool,
        verify_blobs: bool = False,
        sample: float = 0.0,
    ) -> AsyncIterator[Progress | IntegrityReport]:
        """Progress messages, then the report; `namespace` None: every namespace.
        With a blob store, also artifacts whose blob is missing and, checking every
        namespace, orphan blobs (with their bytes), every compressed blob's frame
        index and, with `verify_blobs` (or for the `sample` fraction of blobs),
        blobs whose content no longer hashes to their name."""
        started = datetime.now(UTC)
        findings: list[Finding] = []
        checked: list[tuple[str, int]] = []
        try:
            async for event in self.integrity.check_integrity(namespace, repair=repair):
                if isinstance(event, Progress):
                    yield event
                elif isinstance(event, Finding):
                    findings.append(event)
                else:
                    checked.append(event)
        except StrataError as error:
            _stopped_by_damage(findings, "database", error)
        unreferenced = 0
        if self.blobs is not None:
            yield Progress("blobs", 0, 0, "blobs")
            try:
                found = await blob_gc.check_blobs(
                    self.artifacts,
                    self.blobs,
                    verify=verify_blobs,
                    sample=sample,
                    frame_index=namespace is None,
                    segments=await self.segment_blobs(),
                )
            except StrataError as error:
                _stopped_by_damage(findings, "blobs", error)
            else:
                await self._blob_findings(self.blobs, found, namespace, repair, findings, checked)
                unreferenced = found.orphan_bytes if namespace is None else 0
                yield Progress("blobs", found.blobs_checked, found.blobs_checked, "blobs")
        report = IntegrityReport(
            tuple(findings), tuple(checked), repair, started, datetime.now(UTC), unreferenced
        )
        for name in {name for name, _ in checked} | {f.check for f in findings}:
            unrepaired = sum(1 for f in findings if f.check == name and not f.repaired)
            metrics.INTEGRITY_PROBLEMS.labels(name).set(unrepaired)
        metrics.INTEGRITY_LAST_RUN.set(report.finished.timestamp())
        if namespace is None:
            metrics.INTEGRITY_UNREFERENCED_BYTES.set(unreferenced)
        if self.reports is not None:
            try:
                await self.reports.save_report(EVERY if namespace is None else namespace, report)
            except StrataError as error:
                if not _damaged(findings):
                    raise
                log.warning("integrity report not saved", error=error.message)
        yield report

    async def last_report(self, namespace: str | None) -> IntegrityReport | None:
        """The last run's report for a namespace (None: of every namespace)."""
        if self.reports is None:
            return None
        return await self.reports.last_report(EVERY if namespace is None else namespace)

    async def run_every(self) -> None:
        """Every `interval` seconds, check every namespace (re-hashing the `sample`
        fraction of blobs) if this process leads. Errors are logged; the next tick
        retries."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                if await self.lead(LEADER_LOCK):
                    async for event in self.run(None, repair=False, sample=self.sample):
                        if isinstance(event, IntegrityReport) and event.findings:
                            log.warning("integrity problems", findings=len(event.findings))
            except StrataError as error:
                log.warning("scheduled integrity check failed", error=error.message)

    async def _blob_findings(
        self,
        blobs: BlobStore,
        found: BlobReport,
        namespace: str | None,
        repair: bool,
        findings: list[Finding],
        checked: list[tuple[str, int]],
    ) -> None:
        """Add the blob findings and counts."""
        for ns, id, sha in found.missing:
            if namespace is None or ns == namespace:
                problem = f"its blob {sha} is missing from the blob store"
                findings.append(Finding("blobs", ns, "artifact", id, problem, False))
        for ns, id, sha in found.missing_segments:
            if namespace is None or ns == namespace:
                problem = (
                    f"the segment {sha} of its archived entries is missing from the blob store"
                )
                findings.append(Finding("blobs", ns, "transcript", id, problem, False))
        # Blobs are shared by every namespace (dedup): what belongs to none of them
        # (corrupt and orphan blobs, the counts, the sweep) is reported and repaired
        # only by a check of every namespace, so a check of one shows nothing of
        # the others.
        if namespace is not None:
            return
        for sha, problem in found.corrupt:
            findings.append(Finding("blobs", "", "blob", sha, problem, False))
        still: set[str] = {sha for sha, _ in found.orphans}
        if repair and found.orphans:
            await blob_gc.sweep_orphan_blobs(self.artifacts, blobs, self.blob_grace)
            still = {blob.sha256 async for blob in blobs.list_blobs()}
        for sha, size in found.orphans:
            problem = "no artifact references it (the sweep removes it after the grace period)"
            findings.append(
                Finding("blobs", "", "blob", sha, problem, True, sha not in still, bytes=size)
            )
        checked.append(("artifacts", found.artifacts_checked))
        checked.append(("blobs", found.blobs_checked))
        checked.append(("blob_contents", found.contents_checked))


def _damaged(findings: list[Finding]) -> bool:
    """Whether the database file itself was found damaged."""
    return any(finding.check == "database_file" for finding in findings)


def _stopped_by_damage(findings: list[Finding], checks: str, error: StrataError) -> None:
    """A check that failed on a database file already found damaged is one more
    finding (the report still comes, with what the earlier checks found); any other
    failure is the run's error."""
    if not _damaged(findings):
        raise error
    problem = f"the {checks} checks stopped on the damage: {error.message}"
    findings.append(Finding("database_file", "", "database", "", problem, False))
