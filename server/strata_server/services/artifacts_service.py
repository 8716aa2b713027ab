"""Artifact use cases: the upload pipeline, downloads, and the artifact and blob
questions a client asks (get, list, delete, which blobs are missing, a URL).

An upload's order of operations, and why:

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
6. **Tell** `stored` (the search index reads a text artifact's first bytes back);
   the artifact is already complete, so nothing there can undo it.

`discard` runs whatever happens (shielded from cancellation), so a cancelled or
failed upload leaves no staged bytes; a blob published in step 4 whose row then
failed to insert is an orphan the sweep removes after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, replace
from datetime import UTC, datetime, timedelta

from strata_server.core import validation
from strata_server.core.artifact_rules import (
    EMPTY_SHA256,
    PIN_TTL,
    Artifact,
    ArtifactListQuery,
    Header,
    StagedBlob,
    byte_range,
    check_staged,
    checked_header,
)
from strata_server.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    QuotaExceeded,
    StrataError,
    TooLarge,
)
from strata_server.core.idle import idle_limited
from strata_server.core.models import Actor, Idempotency, Page
from strata_server.core.validation import new_id
from strata_server.core.values import frozen
from strata_server.services.artifact_tiers import ArtifactTiers
from strata_server.storage.ports import ArtifactStore, BlobStaging, BlobStore, QuotaStore
from strata_server.storage.ports.write_context import WriteContext

REPIN_SECONDS = PIN_TTL.total_seconds() / 4
"""A long upload renews its pin this often, so the pin outlives the upload."""
CHUNK_SIZE = 256 << 10
"""Largest piece a download yields: big enough that per-message costs stay small next
to the copying, small enough that a stream holds little memory (bench/artifacts.py
measures the resulting rate)."""
IDLE_SETTING = "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS"


@frozen
class UploadHeader:
    """An upload's header. An upload stream is this header, then the content chunks
    (bytes); None stands for a message holding neither. As the client sent it, it is
    unchecked: `upload` checks it (`_start`), so that one sent twice is refused as
    such, whatever it holds."""

    namespace: str
    header: Header
    request_id: str | None
    fingerprint: str
    """Identifies the header's content (without request_id) for idempotent retries."""


def _start(sent: UploadHeader) -> UploadHeader:
    """The header checked: what the chunks after it become."""
    return UploadHeader(
        validation.namespace(sent.namespace),
        checked_header(sent.header),
        validation.request_id(sent.request_id or ""),
        sent.fingerprint,
    )


@frozen
class ArtifactUrl:
    """Where a client may fetch an artifact's stored bytes until `expire_time`."""

    url: str
    artifact: Artifact
    expire_time: datetime


@frozen
class Artifacts:
    """The artifact use cases over artifact rows, quotas and blob bytes."""

    artifacts: ArtifactStore
    quotas: QuotaStore
    blobs: BlobStore
    _: KW_ONLY
    max_bytes: int
    idle_seconds: float
    stored: Callable[[Artifact], Awaitable[None]] | None = None
    """Called with each artifact an upload stored (search indexes its text)."""

    async def upload(
        self,
        parts: AsyncIterator[UploadHeader | bytes | None],
        *,
        actor: Actor,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Artifact:
        """Store one artifact from a stream of its header, then its content chunks
        (see the module doc). Each part must come within the idle limit.

        `cancelled` tells whether the caller went away: a cancelled stream can end
        like a complete one, so it is asked before anything is published."""
        stream = idle_limited(parts, self.idle_seconds, IDLE_SETTING)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            raise InvalidArgument.field(
                "header", "the stream is empty; send a header first"
            ) from None
        if not isinstance(first, UploadHeader):
            raise InvalidArgument.field(
                "header", "the first message must be the header, not a chunk"
            )
        return await self._upload(_start(first), _chunks(stream), actor, cancelled)

    async def _upload(
        self,
        start: UploadHeader,
        chunks: AsyncIterator[bytes],
        actor: Actor,
        cancelled: Callable[[], bool],
    ) -> Artifact:
        namespace, header = start.namespace, start.header
        first = await anext(chunks, None)
        if first is None and header.sha256 is not None and header.sha256 != EMPTY_SHA256:
            return await self._reuse(start, actor)
        await self._check_quota(namespace, 1)
        upload_id = new_id()
        pinned = False
        sink = False
        if header.sha256 is not None:
            await self._pin(namespace, upload_id, header.sha256)
            pinned = True
            sink = await self.blobs.stat(header.sha256) is not None
        staging = self.blobs.stage(header.content_type, header.sha256, sink=sink)
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
            result = await self.artifacts.create_artifact(
                artifact,
                WriteContext(actor, _idempotency(start, staged.sha256)),
                upload_id=upload_id,
            )
            pinned = False  # dropped with the row
            return await self._stored(result)
        finally:
            await asyncio.shield(self._cleanup(staging, namespace, upload_id, pinned))

    async def _cleanup(
        self, staging: BlobStaging, namespace: str, upload_id: str, pinned: bool
    ) -> None:
        await staging.discard()
        if pinned:
            with contextlib.suppress(StrataError):  # it expires anyway
                await self.artifacts.unpin_blob(namespace, upload_id)

    def _check_size(self, header: Header, total: int) -> None:
        if total > self.max_bytes:
            raise TooLarge(
                f"the artifact is larger than the limit of {self.max_bytes} bytes",
                metadata={"limit": str(self.max_bytes)},
            )
        if header.size is not None and total > header.size:
            raise InvalidArgument.field(
                "header.size", f"the content is longer than the {header.size} bytes announced"
            )

    async def _check_quota(self, namespace: str, adding: int) -> None:
        """QuotaExceeded when `adding` more bytes would take the namespace past its
        quota (a namespace without one passes)."""
        for quota in await self.quotas.list_quotas(namespace):
            if adding > 0 and quota.used_bytes + adding > quota.max_bytes:
                raise QuotaExceeded(
                    namespace, used_bytes=quota.used_bytes, max_bytes=quota.max_bytes
                )

    async def _pin(self, namespace: str, upload_id: str, sha256: str) -> None:
        await self.artifacts.pin_blob(namespace, upload_id, sha256, datetime.now(UTC) + PIN_TTL)

    async def _reuse(self, start: UploadHeader, actor: Actor) -> Artifact:
        """An upload that sent no chunks: name content the namespace already stores."""
        namespace, header = start.namespace, start.header
        sha256 = header.sha256 or ""
        ref = (await self.artifacts.namespace_blobs(namespace, [sha256])).get(sha256)
        if ref is None or await self.blobs.stat(sha256) is None:
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
        artifact = await self.artifacts.create_artifact(
            _artifact(namespace, header, staged),
            WriteContext(actor, _idempotency(start, sha256)),
            upload_id=None,
        )
        return await self._stored(artifact)

    async def _stored(self, artifact: Artifact) -> Artifact:
        if self.stored is not None:
            await self.stored(artifact)
        return artifact

    async def download(
        self, namespace: str, id: str, offset: int, limit: int
    ) -> AsyncGenerator[Artifact | bytes, None]:
        """The artifact, then its bytes from `offset` (at most `limit` of them, 0: to
        the end) in pieces of at most CHUNK_SIZE."""
        if offset < 0:
            raise InvalidArgument.field("offset", "must not be negative")
        if limit < 0:
            raise InvalidArgument.field("limit", "must not be negative")
        artifact = await self.artifacts.get_artifact(namespace, id)
        start, end = byte_range(artifact.size, offset, limit)
        pieces = await self.blobs.open(artifact.blob, start, end)
        try:
            yield artifact
            async for piece in pieces:
                for at in range(0, len(piece), CHUNK_SIZE):
                    yield piece[at : at + CHUNK_SIZE]
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]

    async def get(self, namespace: str, id: str) -> Artifact:
        """One artifact's metadata."""
        return await self.artifacts.get_artifact(namespace, id)

    async def list_artifacts(self, namespace: str, query: ArtifactListQuery) -> Page[Artifact]:
        """A page of the namespace's artifacts, after the id `query.after`."""
        return await self.artifacts.list_artifacts(namespace, query)

    async def delete(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Remove the artifact's row; its blob goes with the next sweep if no other
        artifact names it (services/blob_gc.py)."""
        await self.artifacts.delete_artifact(namespace, id, actor=actor)

    async def restore(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """RestoreArtifact: back to the hot tier (services/artifact_tiers.py)."""
        return await ArtifactTiers(self.artifacts, self.blobs).restore(namespace, id, actor=actor)

    async def find_missing(self, namespace: str, sha256s: Sequence[str]) -> list[str]:
        """Which of `sha256s` an upload must send: those the namespace does not name,
        or whose bytes the blob store lacks."""
        named = await self.artifacts.namespace_blobs(namespace, sha256s) if sha256s else {}
        stored = {sha for sha in named if await self.blobs.stat(sha) is not None}
        return [sha for sha in sha256s if sha not in stored]

    async def url(self, namespace: str, id: str, expiry: timedelta) -> ArtifactUrl:
        """A presigned URL of the artifact's stored bytes (S3 only)."""
        artifact = await self.artifacts.get_artifact(namespace, id)
        url = await self.blobs.presign(artifact.blob, expiry, artifact.content_type, artifact.name)
        return ArtifactUrl(url, artifact, datetime.now(UTC) + expiry)


async def _chunks(parts: AsyncIterator[UploadHeader | bytes | None]) -> AsyncIterator[bytes]:
    """The content chunks after the header (empty ones dropped); a second header is a
    caller error."""
    async for part in parts:
        if isinstance(part, UploadHeader):
            raise InvalidArgument.field("header", "was sent twice; send it once, first")
        if part is None:
            raise InvalidArgument.field("part", "each message must hold a header or a chunk")
        if part:
            yield part


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
        parent=header.parent,
    )


def _idempotency(start: UploadHeader, sha256: str) -> Idempotency | None:
    """The request's identity is its header (without request_id) plus its content."""
    if start.request_id is None:
        return None
    digest = hashlib.sha256(f"{start.fingerprint}:{sha256}".encode()).hexdigest()
    return Idempotency(start.request_id, digest)
