"""The upload pipeline: stage, verify, pin, publish, then insert the row.

Order of operations, and why:

0. **Quota**: a namespace already at its storage quota is refused before a byte
   is staged (the database's triggers are what enforce the quota, at step 5;
   this and the check before publishing only spare the work and the orphan).
1. **Pin** the expected blob (when the header names its SHA-256) before asking the
   blob store whether it has it. The pin is taken under the blob's lock, so a sweep
   deleting it has finished first; from then on the sweep leaves it alone. Only
   then can "already stored" be trusted enough to hash the bytes without keeping
   them (`sink`).
2. **Stage** every chunk (temp file or multipart upload) while hashing; count bytes
   against the limits. Nothing is visible to anyone.
3. **Verify** hash and size against the header: a mismatch stores nothing.
4. **Pin** the actual SHA-256 (again, under the lock); refuse if its stored size
   would take the namespace past its quota; then **publish**: the blob
   becomes visible atomically, or the existing copy is kept and no byte is added.
   The blob is durable before any row names it.
5. **Insert** the row, its audit entry and the request_id in one transaction, which
   also drops the pin.

`discard` runs whatever happens (shielded from cancellation), so a cancelled or
failed upload leaves no staged bytes; a blob published in step 4 whose row then
failed to insert is an orphan the sweep removes after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

from strata_server.core.artifacts import (
    EMPTY_SHA256,
    PIN_TTL,
    Artifact,
    Header,
    StagedBlob,
    check_staged,
)
from strata_server.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    QuotaExceeded,
    StrataError,
    TooLarge,
)
from strata_server.core.models import Actor, Idempotency
from strata_server.core.validation import new_id
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStaging, BlobStore

REPIN_SECONDS = PIN_TTL.total_seconds() / 4
"""A long upload renews its pin this often, so the pin outlives the upload."""


class Uploads:
    """Runs UploadArtifact against the two ports."""

    def __init__(self, db: Storage, blobs: BlobStore, max_bytes: int) -> None:
        self._db = db
        self._blobs = blobs
        self._max_bytes = max_bytes

    async def upload(
        self,
        namespace: str,
        header: Header,
        chunks: AsyncIterator[bytes],
        *,
        actor: Actor,
        request_id: str | None,
        header_fingerprint: str,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Artifact:
        """Store one artifact from its header and content chunks (see the module doc).

        `cancelled` tells whether the caller went away: a cancelled stream can end
        like a complete one, so it is asked before anything is published."""
        first = await anext(chunks, None)
        if first is None and header.sha256 is not None and header.sha256 != EMPTY_SHA256:
            return await self._reuse(namespace, header, actor, request_id, header_fingerprint)
        await self._check_quota(namespace, 1)
        upload_id = new_id()
        pinned = False
        sink = False
        if header.sha256 is not None:
            await self._pin(namespace, upload_id, header.sha256)
            pinned = True
            sink = await self._blobs.stat(header.sha256) is not None
        staging = self._blobs.stage(header.content_type, header.sha256, sink=sink)
        try:
            repinned = time.monotonic()
            total = 0
            pending = first
            while pending is not None:
                total += len(pending)
                self._check_size(header, total)
                await staging.write(pending)
                if pinned and time.monotonic() - repinned > REPIN_SECONDS:
                    await self._pin(namespace, upload_id, header.sha256 or "")
                    repinned = time.monotonic()
                pending = await anext(chunks, None)
            if cancelled():
                raise asyncio.CancelledError("the client cancelled the upload")
            staged = await staging.finish()
            check_staged(header, staged)
            if cancelled():
                raise asyncio.CancelledError("the client cancelled the upload")
            await self._pin(namespace, upload_id, staged.sha256)
            pinned = True
            await self._check_quota(namespace, staged.stored_size)
            stored = await staging.publish()
            artifact = replace(
                _artifact(namespace, header, staged),
                stored_size=stored.stored_size,
                compression=stored.compression,
            )
            result = await self._db.artifacts.create_artifact(
                artifact,
                actor=actor,
                idempotency=_idempotency(request_id, header_fingerprint, staged.sha256),
                upload_id=upload_id,
            )
            pinned = False  # dropped with the row
            return result
        finally:
            await asyncio.shield(self._cleanup(staging, namespace, upload_id, pinned))

    async def _cleanup(
        self, staging: BlobStaging, namespace: str, upload_id: str, pinned: bool
    ) -> None:
        await staging.discard()
        if pinned:
            with contextlib.suppress(StrataError):  # it expires anyway
                await self._db.artifacts.unpin_blob(namespace, upload_id)

    def _check_size(self, header: Header, total: int) -> None:
        if total > self._max_bytes:
            raise TooLarge(
                f"the artifact is larger than the limit of {self._max_bytes} bytes",
                metadata={"limit": str(self._max_bytes)},
            )
        if header.size is not None and total > header.size:
            raise InvalidArgument.field(
                "header.size", f"the content is longer than the {header.size} bytes announced"
            )

    async def _check_quota(self, namespace: str, adding: int) -> None:
        """QuotaExceeded when `adding` more bytes would take the namespace past its
        quota (a namespace without one passes)."""
        for quota in await self._db.quotas.list_quotas(namespace):
            if adding > 0 and quota.used_bytes + adding > quota.max_bytes:
                raise QuotaExceeded(
                    namespace, used_bytes=quota.used_bytes, max_bytes=quota.max_bytes
                )

    async def _pin(self, namespace: str, upload_id: str, sha256: str) -> None:
        await self._db.artifacts.pin_blob(namespace, upload_id, sha256, datetime.now(UTC) + PIN_TTL)

    async def _reuse(
        self,
        namespace: str,
        header: Header,
        actor: Actor,
        request_id: str | None,
        header_fingerprint: str,
    ) -> Artifact:
        """An upload that sent no chunks: name content the namespace already stores."""
        sha256 = header.sha256 or ""
        ref = (await self._db.artifacts.namespace_blobs(namespace, [sha256])).get(sha256)
        if ref is None or await self._blobs.stat(sha256) is None:
            raise FailedPrecondition(
                f"no content with sha256 {sha256} is stored in this namespace; send the content "
                "in chunks after the header",
                reason="BLOB_NOT_FOUND",
            )
        if header.size is not None and header.size != ref.size:
            raise InvalidArgument.field(
                "header.size",
                f"the content with that sha256 has {ref.size} bytes, not {header.size}",
            )
        staged = StagedBlob(sha256, ref.size, ref.stored_size, ref.compression)
        return await self._db.artifacts.create_artifact(
            _artifact(namespace, header, staged),
            actor=actor,
            idempotency=_idempotency(request_id, header_fingerprint, sha256),
            upload_id=None,
        )


def _artifact(namespace: str, header: Header, staged: StagedBlob) -> Artifact:
    return Artifact(
        namespace=namespace,
        id=new_id(),
        owner=header.owner,
        kind=header.kind,
        name=header.name,
        content_type=header.content_type,
        sha256=staged.sha256,
        size=staged.size,
        stored_size=staged.stored_size,
        compression=staged.compression,
        labels=dict(header.labels),
        create_time=datetime.now(UTC),
    )


def _idempotency(
    request_id: str | None, header_fingerprint: str, sha256: str
) -> Idempotency | None:
    """The request's identity is its header (without request_id) plus its content."""
    if request_id is None:
        return None
    digest = hashlib.sha256(f"{header_fingerprint}:{sha256}".encode()).hexdigest()
    return Idempotency(request_id, digest)
