"""Integrity runs: what AdminService.CheckIntegrity checks, in order, and the
report it streams at the end (core/integrity_findings.py says what a finding is and which
repairs are safe). The database checks its own rows (`IntegrityStore`); the blobs
are checked against the artifact rows here (services/blob_gc.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

from strata_server import metrics
from strata_server.core.integrity_findings import Finding, IntegrityReport
from strata_server.core.models import Progress
from strata_server.services import blob_gc
from strata_server.storage.ports import ArtifactStore, BlobStore, IntegrityStore


@dataclass(frozen=True, slots=True)
class IntegrityCheck:
    """Runs CheckIntegrity over the database's checks and, given a blob store, the
    blobs (orphans are repaired by the sweep once older than `blob_grace`)."""

    integrity: IntegrityStore
    artifacts: ArtifactStore
    blobs: BlobStore | None = None
    _: KW_ONLY
    blob_grace: timedelta = timedelta(hours=1)

    async def run(
        self, namespace: str | None, *, repair: bool, verify_blobs: bool = False
    ) -> AsyncIterator[Progress | IntegrityReport]:
        """Progress messages, then the report; `namespace` None: every namespace.
        With a blob store, also artifacts whose blob is missing and, checking every
        namespace, orphan blobs and, with `verify_blobs`, corrupt blobs."""
        started = datetime.now(UTC)
        findings: list[Finding] = []
        checked: list[tuple[str, int]] = []
        async for event in self.integrity.check_integrity(namespace, repair=repair):
            if isinstance(event, Progress):
                yield event
            elif isinstance(event, Finding):
                findings.append(event)
            else:
                checked.append(event)
        if self.blobs is not None:
            yield Progress("blobs", 0, 0, "blobs")
            done = await self._check_blobs(
                self.blobs, namespace, repair, verify_blobs, findings, checked
            )
            yield Progress("blobs", done, done, "blobs")
        report = IntegrityReport(
            tuple(findings), tuple(checked), repair, started, datetime.now(UTC)
        )
        for name in {name for name, _ in checked} | {f.check for f in findings}:
            unrepaired = sum(1 for f in findings if f.check == name and not f.repaired)
            metrics.INTEGRITY_PROBLEMS.labels(name).set(unrepaired)
        metrics.INTEGRITY_LAST_RUN.set(report.finished.timestamp())
        yield report

    async def _check_blobs(
        self,
        blobs: BlobStore,
        namespace: str | None,
        repair: bool,
        verify: bool,
        findings: list[Finding],
        checked: list[tuple[str, int]],
    ) -> int:
        """Add the blob findings and counts; the blobs checked (0 for one namespace)."""
        found = await blob_gc.check_blobs(self.artifacts, blobs, verify=verify)
        for ns, id, sha in found.missing:
            if namespace is None or ns == namespace:
                problem = f"its blob {sha} is missing from the blob store"
                findings.append(Finding("blobs", ns, "artifact", id, problem, False))
        # Blobs are shared by every namespace (dedup): what belongs to none of them
        # (corrupt and orphan blobs, the counts, the sweep) is reported and repaired
        # only by a check of every namespace, so a check of one shows nothing of
        # the others.
        if namespace is not None:
            return 0
        for sha in found.corrupt:
            problem = "its bytes no longer hash to its name"
            findings.append(Finding("blobs", "", "blob", sha, problem, False))
        still: set[str] = set(found.orphans)
        if repair and found.orphans:
            await blob_gc.sweep_orphan_blobs(self.artifacts, blobs, self.blob_grace)
            still = {blob.sha256 async for blob in blobs.list_blobs()}
        for sha in found.orphans:
            repaired = sha not in still
            problem = "no artifact references it (the sweep removes it after the grace period)"
            findings.append(Finding("blobs", "", "blob", sha, problem, True, repaired))
        checked.append(("artifacts", found.artifacts_checked))
        checked.append(("blobs", found.blobs_checked))
        return found.blobs_checked
