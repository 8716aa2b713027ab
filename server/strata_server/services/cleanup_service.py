"""Cleanup runs: what AdminService.RunCleanup and the background scheduler remove.

One run, in order: records past their expire_time (runs over every namespace
only), open transcripts idle past STRATA_TRANSCRIPT_AUTO_SEAL_SECONDS (sealed, not
removed; when it is set), each retention policy of the namespace(s) (records,
finished jobs, sealed transcripts, artifacts, the audit and request logs; an
archive_transcripts policy moves sealed transcripts to the archive tier instead),
completed jobs, audit entries and request log entries past their server default
in namespaces no policy covers (core/retention_rules.py has the rules), and, over
every namespace, the orphan-blob sweep, which takes the blobs of artifacts a
policy removed (an archive_artifacts policy moves artifacts to the archive tier
instead: services/artifact_tiers.py). Every step is counted first, then removed
in batches of BATCH, so a run reports progress (done of total) and a dry run
reports the counts alone.
Records go through the cache's `forget` as they are deleted; sealed transcripts'
followers are woken through `sealed`.

The scheduler is services/cleanup_schedule.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import KW_ONLY
from datetime import UTC, datetime, timedelta

from strata_server import metrics
from strata_server.core.errors import BlobMissing, FailedPrecondition, NotFound
from strata_server.core.models import Actor, Progress, RecordRef
from strata_server.core.retention_rules import (
    LOGS,
    CleanupReport,
    CleanupStep,
    Exclude,
    Target,
)
from strata_server.core.values import frozen
from strata_server.services import blob_gc
from strata_server.services.archive_service import Archiver
from strata_server.services.artifact_tiers import ArtifactTiers
from strata_server.storage.ports import (
    ArtifactStore,
    BlobStore,
    OldJobs,
    OldLog,
    RecordCleanup,
    RetentionStore,
)

BATCH = 1000
"""Rows per purge statement: one short transaction each."""
TRANSCRIPT_BATCH = 100
"""Transcripts per purge transaction: each takes its entries with it."""
TIER_BATCH = 100
"""Artifacts archived per batch: each a HEAD, maybe a COPY, and a transaction."""

Forget = Callable[[Sequence[RecordRef]], Awaitable[None]]
PurgeExpired = Callable[[int], Awaitable[list[RecordRef]]]
Sealed = Callable[[Sequence[tuple[str, str]]], None]


async def _nothing(refs: Sequence[RecordRef]) -> None:
    return None


def _no_one(keys: Sequence[tuple[str, str]]) -> None:
    return None


CLEANUP_ACTOR = Actor("system")
"""Who the audit log says archived a transcript for a policy (as for expiry)."""


async def _none_done() -> int:
    return 0


@frozen
class Keep:
    """The server's defaults for what no policy covers (settings/maintenance_settings.py):
    a zero `audit_log` or `request_log` keeps that log for ever, a zero `idle`
    never seals."""

    completed_jobs: timedelta
    audit_log: timedelta = timedelta(days=90)
    request_log: timedelta = timedelta(days=1)
    idle: timedelta = timedelta(0)
    """How long an open transcript may go without an append before it is sealed."""


@frozen
class Cleanup:
    """Runs cleanups over the retention, record and artifact ports (see the module
    docstring). `purge_expired` deletes expired records through the record cache
    when there is one, so it drops what goes; `forget` tells it (and the watches)
    about the records a policy removed."""

    retention: RetentionStore
    records: RecordCleanup
    artifacts: ArtifactStore
    _: KW_ONLY
    keep: Keep
    purge_expired: PurgeExpired
    forget: Forget = _nothing
    sealed: Sealed = _no_one
    blobs: BlobStore | None = None
    blob_grace: timedelta = timedelta(hours=1)
    archiver: Archiver | None = None
    """Archives for archive_transcripts policies (none: they archive nothing)."""

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
            if self.keep.idle:
                async for progress in self._seal_idle(steps, namespace, started, dry_run):
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
            before = started - self.keep.completed_jobs
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
            for log, keep in (
                (Target.AUDIT_LOG, self.keep.audit_log),
                (Target.REQUEST_LOG, self.keep.request_log),
            ):
                if keep:
                    old = OldLog(log, namespace, started - keep, default=True)
                    async for progress in self._default_log(steps, old, dry_run):
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

    async def _default_log(
        self, steps: list[CleanupStep], old: OldLog, dry_run: bool
    ) -> AsyncIterator[Progress]:
        """A log's entries past the server default, in namespaces without a policy
        for that log."""
        db = self.retention
        count = await db.count_old_log(old)

        async def batch() -> int:
            return await db.purge_old_log(old, BATCH)

        what = "audit entries" if old.log is Target.AUDIT_LOG else "request log entries"
        step = CleanupStep(
            f"{what} past the server default", f"default_{old.log.value}", old.namespace, "", count
        )
        async for progress in self._step(steps, step, dry_run, batch):
            yield progress

    async def _seal_idle(
        self, steps: list[CleanupStep], namespace: str | None, started: datetime, dry_run: bool
    ) -> AsyncIterator[Progress]:
        """Seal the open transcripts with no append for `keep.idle`, waking their
        followers (who then get `sealed`)."""
        db = self.retention
        before = started - self.keep.idle
        count = await db.count_idle_transcripts(namespace, before)

        async def batch() -> int:
            sealed = await db.seal_idle_transcripts(namespace, before, TRANSCRIPT_BATCH)
            self.sealed(sealed)
            return len(sealed)

        step = CleanupStep("idle open transcripts sealed", "idle_transcripts", namespace, "", count)
        async for progress in self._step(steps, step, dry_run, batch, TRANSCRIPT_BATCH):
            yield progress

    async def _sweep(self, steps: list[CleanupStep], dry_run: bool) -> AsyncIterator[Progress]:
        """The orphan-blob sweep (services/blob_gc.py): blobs no artifact names, older
        than the grace period and not pinned by an upload in flight. A dry run
        counts the orphans older than the grace period."""
        assert self.blobs is not None
        name = "orphan blobs"
        cutoff = datetime.now(UTC) - self.blob_grace
        if dry_run:
            yield Progress(name, 0, 0, "blobs")
            segments = await self.archiver.archive_rows.segment_blobs() if self.archiver else {}
            report = await blob_gc.check_blobs(self.artifacts, self.blobs, segments=segments)
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
        if target is Target.ARCHIVE_TRANSCRIPTS:
            return await self._archive_step(namespace, before)
        if target is Target.ARCHIVE_ARTIFACTS:
            return await self._archive_artifacts_step(namespace, selector, before)
        if target in LOGS:
            old = OldLog(target, namespace, before, default=False)
            count = await db.count_old_log(old)

            async def log_batch() -> int:
                return await db.purge_old_log(old, BATCH)

            return count, log_batch, BATCH
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

    async def _archive_step(
        self, namespace: str, before: datetime
    ) -> tuple[int, Callable[[], Awaitable[int]], int]:
        """An archive_transcripts policy: the hot transcripts sealed before `before`,
        archived one by one (each its own segments and transaction)."""
        archiver = self.archiver
        if archiver is None:
            return 0, _none_done, TRANSCRIPT_BATCH
        count = await archiver.archive_rows.count_archivable(namespace, before)

        async def archive_batch() -> int:
            ids = await archiver.archive_rows.archivable(namespace, before, TRANSCRIPT_BATCH)
            archived = 0
            for id in ids:
                try:
                    await archiver.archive(namespace, id, actor=CLEANUP_ACTOR)
                except (NotFound, FailedPrecondition):
                    continue  # deleted or changed meanwhile: the next run sees it again
                archived += 1
            return archived

        return count, archive_batch, TRANSCRIPT_BATCH

    async def _archive_artifacts_step(
        self, namespace: str, selector: str, before: datetime
    ) -> tuple[int, Callable[[], Awaitable[int]], int]:
        """An archive_artifacts policy: the hot artifacts (of the kind, or of every
        kind) created before `before`, archived one by one
        (services/artifact_tiers.py has the rule for shared blobs)."""
        if self.blobs is None:
            return 0, _none_done, BATCH
        tiers = ArtifactTiers(self.artifacts, self.blobs)
        kind = selector or None
        count = await self.artifacts.count_archivable(namespace, kind, before)

        async def archive_batch() -> int:
            found = await self.artifacts.archivable(namespace, kind, before, TIER_BATCH)
            archived = 0
            for artifact in found:
                try:
                    await tiers.archive(artifact, actor=CLEANUP_ACTOR)
                except (NotFound, BlobMissing):
                    continue  # deleted meanwhile, or for the integrity check to report
                archived += 1
            return archived

        return count, archive_batch, TIER_BATCH

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


_EVERY = {
    Target.SEALED_TRANSCRIPTS: "every transcript",
    Target.ARCHIVE_TRANSCRIPTS: "every transcript",
    Target.ARCHIVE_ARTIFACTS: "every kind",
    Target.ARTIFACTS: "every other kind",
    Target.AUDIT_LOG: "every entry",
    Target.REQUEST_LOG: "every entry",
}
"""How a step names an empty selector, by target (jobs: "every queue")."""
