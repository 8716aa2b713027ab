"""Garbage collection and integrity of blobs: `sweep_orphan_blobs` and `check_blobs`.

Deleting an artifact only removes its row; the bytes go when a sweep finds no
artifact naming them. The sweep deletes a blob only when all of these hold:

- it was last written before `now - grace` (a blob just published, whose row is
  about to be inserted, is young);
- no artifact of any namespace names it and no live pin holds it (uploads pin the
  blob they are about to name, and uploads that announced their SHA-256 pin it for
  their whole duration);
- both of those are checked again, and the bytes deleted, under the blob's lock
  (`ArtifactStore.delete_blob_if_unreferenced`), which uploads also take to pin.

So an upload either pins first (the sweep then keeps the blob) or pins after the
sweep deleted it (the upload then finds it missing and publishes its own staged
copy): an artifact never names a blob a concurrent sweep took.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

from strata_server.core.artifact_rules import Compression, IntegrityReport, StoredBlob
from strata_server.core.values import frozen
from strata_server.storage.ports import ArtifactStore, BlobStore

BATCH = 500
STALE_STAGING = timedelta(days=1)
"""Staging leftovers (temp files, staging objects) older than this are from crashed
uploads; live uploads' staging is never this old, whatever the sweep's grace."""
REPORT_LIMIT = 10_000
"""Most entries each list of an IntegrityReport holds."""


@frozen
class SweepResult:
    """What one sweep did."""

    deleted: int = 0
    freed_bytes: int = 0
    kept: int = 0
    stale_staging: int = 0
    expired_pins: int = 0


async def sweep_orphan_blobs(
    db: ArtifactStore, blobs: BlobStore, grace: timedelta, *, now: datetime | None = None
) -> SweepResult:
    """Delete blobs no artifact references, last written more than `grace` ago and not
    pinned by an upload in flight; also drop expired pins and staging left by
    crashed uploads. Safe to run while uploads and other sweeps run."""
    now = now or datetime.now(UTC)
    cutoff = now - grace
    expired = await db.purge_pins(now)
    stale = await blobs.remove_stale_staging(now - STALE_STAGING)
    deleted = freed = kept = 0
    batch: list[StoredBlob] = []

    async def sweep(candidates: Sequence[StoredBlob]) -> None:
        nonlocal deleted, freed, kept
        free = await db.unreferenced_blobs([blob.sha256 for blob in candidates], now)
        for blob in candidates:
            if blob.sha256 in free and await db.delete_blob_if_unreferenced(
                blob.sha256, now, partial(blobs.delete, blob)
            ):
                deleted += 1
                freed += blob.stored_size
            else:
                kept += 1

    async for blob in blobs.list_blobs():
        if blob.modified > cutoff:
            kept += 1
            continue
        batch.append(blob)
        if len(batch) >= BATCH:
            await sweep(batch)
            batch = []
    if batch:
        await sweep(batch)
    return SweepResult(deleted, freed, kept, stale, expired)


async def check_blobs(
    db: ArtifactStore,
    blobs: BlobStore,
    *,
    verify: bool = False,
    sample: float = 0.0,
    frame_index: bool = False,
    segments: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> IntegrityReport:
    """Artifacts whose blob is missing, orphan blobs (with their bytes), and blobs
    whose stored bytes are damaged: with `frame_index`, every compressed blob's
    frame index; with `verify`, every blob's content re-hashed, or with `sample`
    (0..1) about that fraction of them, picked at random on each run. The blobs in
    `segments` (archived transcripts' segments, with the (namespace, transcript)
    of each) are named too: not orphans, and missing when not stored.

    Artifacts are read before blobs are listed: a row is only ever inserted after its
    blob is published, so an upload racing the check cannot show up as missing."""
    report = IntegrityReport()
    segments = segments or {}
    named: dict[str, list[tuple[str, str]]] = {}
    sizes: dict[str, int] = {}
    async for artifact in db.all_artifacts():
        named.setdefault(artifact.sha256, []).append((artifact.namespace, artifact.id))
        sizes[artifact.sha256] = artifact.size
        report.artifacts_checked += 1
    present: set[str] = set()
    async for blob in blobs.list_blobs():
        present.add(blob.sha256)
        report.blobs_checked += 1
        if blob.sha256 not in named and blob.sha256 not in segments:
            report.orphan_bytes += blob.stored_size
            if len(report.orphans) < REPORT_LIMIT:
                report.orphans.append((blob.sha256, blob.stored_size))
        content = verify or _sampled(sample)
        if content or (frame_index and blob.compression is Compression.ZSTD):
            report.contents_checked += content
            problem = await blobs.inspect(blob, content=content, size=sizes.get(blob.sha256))
            if problem is not None and len(report.corrupt) < REPORT_LIMIT:
                report.corrupt.append((blob.sha256, problem))
    for sha256, transcripts in segments.items():
        if sha256 not in present:
            for namespace, id in transcripts:
                if len(report.missing_segments) < REPORT_LIMIT:
                    report.missing_segments.append((namespace, id, sha256))
    for sha256, owners in named.items():
        if sha256 not in present:
            for namespace, id in owners:
                if len(report.missing) < REPORT_LIMIT:
                    report.missing.append((namespace, id, sha256))
    return report


def _sampled(fraction: float) -> bool:
    """True for about `fraction` of the calls."""
    return fraction > 0 and secrets.randbelow(1 << 30) < fraction * (1 << 30)
