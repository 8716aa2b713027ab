"""A cleanup of one owner: RunCleanup with an owner removes everything that owner
holds in a namespace, across kinds, instead of applying the retention policies.

What goes, in order: the owner's transcripts (open or sealed) with their
entries, then its artifact rows, then its records (expired ones included). The
artifacts' blobs go at the next orphan-blob sweep, unless another artifact names
them (so another owner's artifact of the same bytes keeps them). Jobs and queues
have no owner and stay. Records go last because transcripts and artifacts may
name a record as their parent: a run that fails halfway leaves no child whose
parent is gone, and a rerun finishes the job.

Like every cleanup, each step is counted first, then removed in batches (each
one transaction, every row audited in it with action "owner_cleanup" by the
caller), with progress; a dry run reports the counts alone. Removed records go
through `forget`: the record cache drops them and their watches wake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

from strata_server import metrics
from strata_server.core.models import Actor, Progress, RecordRef
from strata_server.core.retention_rules import CleanupReport, CleanupStep
from strata_server.core.values import frozen
from strata_server.services.cleanup_service import BATCH, TRANSCRIPT_BATCH, Forget
from strata_server.storage.ports import OwnerData


async def _nothing(refs: Sequence[RecordRef]) -> None:
    return None


def _unfollowed(namespace: str, ids: Sequence[str]) -> None:
    return None


@frozen
class OwnerCleanup:
    """Removes one owner's records, transcripts and artifacts (module docstring).
    `forget` drops removed records from the cache and wakes their watches;
    `transcripts_gone` wakes the followers of removed transcripts, whose reads
    then end with NOT_FOUND as after DeleteTranscript."""

    owners: OwnerData
    forget: Forget = _nothing
    transcripts_gone: Callable[[str, Sequence[str]], None] = _unfollowed

    async def run(
        self, namespace: str, owner: str, *, dry_run: bool, actor: Actor
    ) -> AsyncIterator[Progress | CleanupReport]:
        """Progress messages, then the report (targets owner_transcripts,
        owner_artifacts, owner_records; selector: the owner)."""
        started = datetime.now(UTC)
        steps: list[CleanupStep] = []
        result = "error"
        try:
            owned = await self.owners.count_owned(namespace, owner)

            async def records() -> int:
                refs = await self.owners.purge_owned_records(namespace, owner, BATCH, actor=actor)
                await self.forget(refs)
                return len(refs)

            async def transcripts() -> int:
                ids = await self.owners.purge_owned_transcripts(
                    namespace, owner, TRANSCRIPT_BATCH, actor=actor
                )
                self.transcripts_gone(namespace, ids)
                return len(ids)

            async def artifacts() -> int:
                return await self.owners.purge_owned_artifacts(namespace, owner, BATCH, actor=actor)

            plan: list[tuple[str, int, Callable[[], Awaitable[int]], int]] = [
                ("transcripts", owned.transcripts, transcripts, TRANSCRIPT_BATCH),
                ("artifacts", owned.artifacts, artifacts, BATCH),
                ("records", owned.records, records, BATCH),
            ]
            for kind, count, batch, size in plan:
                name = f"{kind} of owner {owner} in {namespace}"
                step = CleanupStep(name, f"owner_{kind}", namespace, owner, count)
                yield Progress(name, 0, count, "items")
                done = 0
                if not dry_run and count:
                    while True:
                        removed = await batch()
                        done += removed
                        yield Progress(name, done, max(count, done), "items")
                        if removed < size:
                            break
                steps.append(step if dry_run else dataclasses.replace(step, count=done))
            report = CleanupReport(dry_run, tuple(steps), started, datetime.now(UTC))
            result = "ok"
        finally:
            metrics.CLEANUP_RUNS.labels("rpc", str(dry_run).lower(), result).inc()
        if not dry_run:
            for done_step in steps:
                metrics.CLEANUP_REMOVED.labels(done_step.target).inc(done_step.count)
        yield report
