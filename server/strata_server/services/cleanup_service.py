"""Cleanup runs: what AdminService.RunCleanup and the background scheduler remove.

One run, in order: records past their expire_time (runs over every namespace
only), each retention policy of the namespace(s) (records, finished jobs, sealed
transcripts, artifacts), completed jobs past the server default that no policy
covers (core/retention_rules.py has the rules), and, over every namespace, the
orphan-blob sweep, which takes the blobs of artifacts a policy removed. Every
step is counted first, then removed in batches of BATCH, so a run reports
progress (done of total) and a dry run reports the counts alone. Records go
through the cache's `forget` as they are deleted.

The scheduler (`Cleanup.run_every`) runs on one process among all that share the
database at a time: the one that holds `RetentionStore.lead(LEADER_LOCK)`. It
keeps it while it lives, so cleanups do not run once per replica; when it dies,
another takes over at its next tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

import structlog

from strata_server import metrics
from strata_server.core.errors import StrataError
from strata_server.core.models import Progress, RecordRef
from strata_server.core.retention_rules import CleanupReport, CleanupStep, Exclude, Target
from strata_server.services import blob_gc
from strata_server.storage.ports import (
    ArtifactStore,
    BlobStore,
    OldJobs,
    RecordCleanup,
    RetentionStore,
)

log = structlog.get_logger("strata.cleanup")

BATCH = 1000
"""Rows per purge statement: one short transaction each."""
TRANSCRIPT_BATCH = 100
"""Transcripts per purge transaction: each takes its entries with it."""
LEADER_LOCK = "cleanup"

Forget = Callable[[Sequence[RecordRef]], Awaitable[None]]
PurgeExpired = Callable[[int], Awaitable[list[RecordRef]]]


async def _nothing(refs: Sequence[RecordRef]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Cleanup:
    """Runs cleanups over the retention, record and artifact ports (see the module
    docstring). `purge_expired` deletes expired records through the record cache
    when there is one, so it drops what goes; `forget` tells it (and the watches)
    about the records a policy removed."""

    retention: RetentionStore
    records: RecordCleanup
    artifacts: ArtifactStore
    _: KW_ONLY
    keep_completed: timedelta
    purge_expired: PurgeExpired
    forget: Forget = _nothing
    blobs: BlobStore | None = None
    blob_grace: timedelta = timedelta(hours=1)

    async def run(
        self, *, namespace: str | None, dry_run: bool, trigger: str = "rpc"
    ) -> AsyncIterator[Progress | CleanupReport]:
        """Progress messages, then the report. `namespace` None: every namespace."""
        started = datetime.now(UTC)
        steps: list[CleanupStep] = []
        result = "error"
        try:
            if namespace is None:
                total = await self.records.count_expired()
                step = CleanupStep("expired records", "expired_records", None, "", total)
                async for progress in self._step(steps, step, dry_run, self._expired_batch):
                    yield progress
            for policy in await self.retention.list_retention(namespace):
                before = started - policy.max_age
                count, purge, size = await self._policy_step(
                    policy.namespace, policy.target, policy.selector, before
                )
                what = policy.selector or _EVERY.get(policy.target, "every queue")
                step = CleanupStep(
                    f"{policy.target} of {what} in {policy.namespace}",
                    policy.target.value,
                    policy.namespace,
                    policy.selector,
                    count,
                )
                async for progress in self._step(steps, step, dry_run, purge, size):
                    yield progress
            before = started - self.keep_completed
            default_jobs = OldJobs(namespace, None, "completed", before, Exclude.ANY)
            count = await self.retention.count_old_jobs(default_jobs)

            async def default_batch() -> int:
                return await self.retention.purge_old_jobs(default_jobs, BATCH)

            step = CleanupStep(
                "completed jobs past the server default",
                "default_completed_jobs",
                namespace,
                "",
                count,
            )
            async for progress in self._step(steps, step, dry_run, default_batch):
                yield progress
            if namespace is None and self.blobs is not None:
                async for progress in self._sweep(steps, dry_run):
                    yield progress
            report = CleanupReport(dry_run, tuple(steps), started, datetime.now(UTC))
            result = "ok"
        finally:
            metrics.CLEANUP_RUNS.labels(trigger, str(dry_run).lower(), result).inc()
        if not dry_run:
            for done in steps:
                metrics.CLEANUP_REMOVED.labels(done.target).inc(done.count)
            metrics.CLEANUP_LAST_SUCCESS.set(report.finished.timestamp())
        yield report

    async def _sweep(self, steps: list[CleanupStep], dry_run: bool) -> AsyncIterator[Progress]:
        """The orphan-blob sweep (services/blob_gc.py): blobs no artifact names, older
        than the grace period and not pinned by an upload in flight. A dry run
        counts the orphans older than the grace period."""
        assert self.blobs is not None
        name = "orphan blobs"
        cutoff = datetime.now(UTC) - self.blob_grace
        if dry_run:
            yield Progress(name, 0, 0, "blobs")
            report = await blob_gc.check_blobs(self.artifacts, self.blobs)
            orphans = {sha256 for sha256, _ in report.orphans}
            old = 0
            async for blob in self.blobs.list_blobs():
                if blob.sha256 in orphans and blob.modified <= cutoff:
                    old += 1
            steps.append(CleanupStep(name, "orphan_blobs", None, "", old))
            return
        yield Progress(name, 0, 0, "blobs")
        swept = await blob_gc.sweep_orphan_blobs(self.artifacts, self.blobs, self.blob_grace)
        yield Progress(name, swept.deleted, swept.deleted, "blobs")
        steps.append(CleanupStep(name, "orphan_blobs", None, "", swept.deleted))

    async def _expired_batch(self) -> int:
        return len(await self.purge_expired(BATCH))

    async def _policy_step(
        self, namespace: str, target: Target, selector: str, before: datetime
    ) -> tuple[int, Callable[[], Awaitable[int]], int]:
        """How many items a policy takes now, one batch of its purge, and the
        batch's size (a shorter batch is the last)."""
        db = self.retention
        if target is Target.RECORDS:
            records = self.records
            count = await records.count_old_records(namespace, selector, before)

            async def records_batch() -> int:
                refs = await records.purge_old_records(namespace, selector, before, BATCH)
                await self.forget(refs)
                return len(refs)

            return count, records_batch, BATCH
        if target is Target.SEALED_TRANSCRIPTS:
            count = await db.count_old_transcripts(namespace, before)

            async def transcripts_batch() -> int:
                return await db.purge_old_transcripts(namespace, before, TRANSCRIPT_BATCH)

            return count, transcripts_batch, TRANSCRIPT_BATCH
        if target is Target.ARTIFACTS:
            count = await db.count_old_artifacts(namespace, selector, before)

            async def artifacts_batch() -> int:
                return await db.purge_old_artifacts(namespace, selector, before, BATCH)

            return count, artifacts_batch, BATCH
        state = "completed" if target is Target.COMPLETED_JOBS else "dead"
        exclude = Exclude.NONE if selector else Exclude.NAMED
        jobs = OldJobs(namespace, selector or None, state, before, exclude)
        count = await db.count_old_jobs(jobs)

        async def jobs_batch() -> int:
            return await db.purge_old_jobs(jobs, BATCH)

        return count, jobs_batch, BATCH

    async def _step(
        self,
        steps: list[CleanupStep],
        step: CleanupStep,
        dry_run: bool,
        batch: Callable[[], Awaitable[int]],
        size: int = BATCH,
    ) -> AsyncIterator[Progress]:
        """Progress of one step (`step.count` is what it found to remove); on a real
        run, its batches until one comes up short (rows written meanwhile may make
        `done` pass the count). Then `step`, with what it removed, joins `steps`."""
        yield Progress(step.name, 0, step.count, "items")
        done = 0
        if not dry_run and step.count:
            while True:
                removed = await batch()
                done += removed
                yield Progress(step.name, done, max(step.count, done), "items")
                if removed < size:
                    break
        steps.append(step if dry_run else dataclasses.replace(step, count=done))

    async def run_every(self, interval: float) -> None:
        """Every `interval` seconds, run a cleanup over every namespace if this process
        leads (see the module docstring). Errors are logged; the next tick retries."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.retention.lead(LEADER_LOCK):
                    await self._scheduled()
            except StrataError as error:
                log.warning("scheduled cleanup failed", error=error.message)

    async def _scheduled(self) -> None:
        report: CleanupReport | None = None
        async for event in self.run(namespace=None, dry_run=False, trigger="scheduler"):
            if isinstance(event, CleanupReport):
                report = event
        if report is not None and report.total:
            log.info("cleanup", removed=report.total, steps=len(report.steps))


_EVERY = {Target.SEALED_TRANSCRIPTS: "every transcript", Target.ARTIFACTS: "every other kind"}
"""How a step names an empty selector, by target (jobs: "every queue")."""
