"""Integrity runs: what AdminService.CheckIntegrity checks, in order, and the
report it streams at the end (core/integrity.py says what a finding is and which
repairs are safe)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from strata_server import metrics
from strata_server.artifacts import gc
from strata_server.core.integrity import Finding, IntegrityReport
from strata_server.core.models import Progress
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStore


async def check_integrity(
    database: Storage,
    namespace: str | None,
    *,
    repair: bool,
    blobs: BlobStore | None = None,
    verify_blobs: bool = False,
    blob_grace: timedelta = timedelta(hours=1),
) -> AsyncIterator[Progress | IntegrityReport]:
    """Progress messages, then the report; `namespace` None: every namespace. With
    `blobs`, also artifacts whose blob is missing and, checking every namespace,
    orphan blobs (repaired by the sweep once older than `blob_grace`) and, with
    `verify_blobs`, corrupt blobs."""
    started = datetime.now(UTC)
    findings: list[Finding] = []
    checked: list[tuple[str, int]] = []
    async for event in database.integrity.check_integrity(namespace, repair=repair):
        if isinstance(event, Progress):
            yield event
        elif isinstance(event, Finding):
            findings.append(event)
        else:
            checked.append(event)
    if blobs is not None:
        yield Progress("blobs", 0, 0, "blobs")
        found = await gc.check_integrity(database.artifacts, blobs, verify=verify_blobs)
        for ns, id, sha in found.missing:
            if namespace is None or ns == namespace:
                problem = f"its blob {sha} is missing from the blob store"
                findings.append(Finding("blobs", ns, "artifact", id, problem, False))
        # Blobs are shared by every namespace (dedup): what belongs to none of them
        # (corrupt and orphan blobs, the counts, the sweep) is reported and repaired
        # only by a check of every namespace, so a check of one shows nothing of
        # the others.
        if namespace is None:
            for sha in found.corrupt:
                problem = "its bytes no longer hash to its name"
                findings.append(Finding("blobs", "", "blob", sha, problem, False))
            still: set[str] = set(found.orphans)
            if repair and found.orphans:
                await gc.sweep_orphan_blobs(database.artifacts, blobs, blob_grace)
                still = {blob.sha256 async for blob in blobs.list_blobs()}
            for sha in found.orphans:
                repaired = sha not in still
                problem = "no artifact references it (the sweep removes it after the grace period)"
                findings.append(Finding("blobs", "", "blob", sha, problem, True, repaired))
            checked.append(("artifacts", found.artifacts_checked))
            checked.append(("blobs", found.blobs_checked))
        done = found.blobs_checked if namespace is None else 0
        yield Progress("blobs", done, done, "blobs")
    report = IntegrityReport(tuple(findings), tuple(checked), repair, started, datetime.now(UTC))
    for name in {name for name, _ in checked} | {f.check for f in findings}:
        unrepaired = sum(1 for f in findings if f.check == name and not f.repaired)
        metrics.INTEGRITY_PROBLEMS.labels(name).set(unrepaired)
    metrics.INTEGRITY_LAST_RUN.set(report.finished.timestamp())
    yield report
