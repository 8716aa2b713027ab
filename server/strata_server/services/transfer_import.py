"""ImportNamespace: an export's tar streamed in, checked whole, then written all or
nothing.

The stream is a header, then the tar's bytes in chunks; each message must come
within the idle limit (core/idle.py).

Order of work, and why:

1. **Stage** the stream to a temporary file, counting bytes against the limit
   (RESOURCE_EXHAUSTED past it). The manifest is the tar's last member, so
   nothing can be trusted before the end has arrived.
2. **Verify**: the tar must read to its end, end with manifest.json of a known
   format version, and hold exactly the members the manifest lists, each with its
   size and sha256; a blob member must hash to its own name. Any fault is
   INVALID_ARGUMENT with reason BAD_ARCHIVE, and nothing has been written yet.
3. **Blobs** go into the blob store through the same staging as uploads (hashed
   again, compressed by the same rules), each pinned first so the orphan sweep
   keeps off it: a blob is durable before any row names it. A blob the store
   already holds is hashed, not stored again.
4. **Rows** go in through the database port in one transaction, decompressed as
   a stream and checked line by line in a worker thread (bad JSON or a gap in a
   transcript's seqs rolls everything back). Artifact rows take the stored size
   and encoding of the blob as this store holds it. No line is read past
   `ImportLimits.line_bytes`, and the rows of the whole tar decompress to at
   most `ImportLimits.rows_bytes` (services/import_rows.py says why).
5. The record cache forgets the namespace's records (the import may have replaced
   some), and the pins are dropped.
6. The consumers of the queues and the watches of the collections the rows went
   into are woken (services/topics.py): a queue or collection nobody wrote to
   rests between safety re-checks minutes apart, and the import is a write to it.

If anything fails after step 3 began, the blobs already stored are orphans the
cleanup's sweep removes after its grace period; no row names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY
from datetime import UTC, datetime
from typing import Any

from strata_server.core.artifact_rules import PIN_TTL, StoredBlob
from strata_server.core.errors import InvalidArgument, StrataError, TooLarge
from strata_server.core.idle import idle_limited
from strata_server.core.models import Actor, Progress
from strata_server.core.transfer_format import (
    BLOB_NAME_RE,
    BLOBS,
    BadArchive,
    ConflictPolicy,
    ImportCounts,
)
from strata_server.core.validation import namespace as check_namespace
from strata_server.core.validation import new_id
from strata_server.core.values import frozen
from strata_server.services.import_rows import ImportRows, RowBudget
from strata_server.services.import_rows import content_types as content_types_of
from strata_server.services.topics import Wakeups
from strata_server.services.transfer_tar import StagedTar, open_staged, read_piece
from strata_server.storage.ports import ArtifactStore, BlobStore, ImportRequest, TransferStore

PROGRESS_SECONDS = 0.25
IDLE_SETTING = "STRATA_IMPORT_IDLE_TIMEOUT_SECONDS"


@frozen
class ImportOutcome:
    """What an import did: the last thing it yields."""

    namespace: str
    source_namespace: str
    counts: ImportCounts
    archive_bytes: int
    new_blob_bytes: int


@frozen
class ImportLimits:
    """What one import may make the server hold or do.

    `archive_bytes`: the largest archive, staged whole (RESOURCE_EXHAUSTED past it).
    `line_bytes`: the longest JSON Lines row, decompressed: more than any row the
    server accepts through its API, so a longer one is a forgery. `rows_bytes`: the
    row members of one tar together, decompressed. Past either of the last two,
    BAD_ARCHIVE."""

    archive_bytes: int
    line_bytes: int
    rows_bytes: int

    def budget(self) -> RowBudget:
        """What one pass over a tar's rows may read."""
        return RowBudget(self.line_bytes, self.rows_bytes)


@frozen
class ImportHeader:
    """An import's header as the client sent it. An import stream is this header,
    then the tar's bytes in chunks (bytes); None stands for a message holding
    neither. The import checks the header."""

    namespace: str
    """Where the rows go; "" for the namespace the tar was exported from."""
    policy: ConflictPolicy | None
    """None: the client named no policy this server knows."""
    size: int
    """The tar's size as announced, for progress (0: not announced)."""


@frozen
class NamespaceImport:
    """Runs ImportNamespace against the row, pin and blob ports."""

    rows: TransferStore
    pins: ArtifactStore
    blobs: BlobStore
    _: KW_ONLY
    limits: ImportLimits
    idle_seconds: float
    forget: Callable[[str], Awaitable[None]]
    wakeups: Wakeups

    async def run(
        self, parts: AsyncIterator[ImportHeader | bytes | None], *, actor: Actor
    ) -> AsyncIterator[Progress | ImportOutcome]:
        """Progress messages, then the outcome (see the module docstring)."""
        stream = idle_limited(parts, self.idle_seconds, IDLE_SETTING)
        header = await anext(stream, None)
        if not isinstance(header, ImportHeader):
            raise InvalidArgument.field("header", "the first message must be the header")
        target = check_namespace(header.namespace) if header.namespace else None
        if header.policy is None:
            raise InvalidArgument.field("header.on_conflict", "is not a ConflictPolicy")
        if header.size < 0:
            raise InvalidArgument.field("header.size", "must not be negative")
        events = self._import(_chunks(stream), target, header.policy, header.size, actor)
        async for event in events:
            yield event

    async def _import(
        self,
        chunks: AsyncIterator[bytes],
        target: str | None,
        policy: ConflictPolicy,
        declared_size: int,
        actor: Actor,
    ) -> AsyncIterator[Progress | ImportOutcome]:
        max_bytes = self.limits.archive_bytes
        if declared_size > max_bytes:
            raise _too_large(max_bytes)
        with tempfile.TemporaryFile() as staged:
            received = 0
            reported = time.monotonic()
            yield Progress("receiving", 0, declared_size, "bytes")
            async for chunk in chunks:
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(max_bytes)
                await asyncio.to_thread(staged.write, chunk)
                if time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    yield Progress("receiving", received, declared_size, "bytes")
            yield Progress("receiving", received, received, "bytes")
            if received == 0:
                raise BadArchive("the archive is empty: send its bytes in chunks after the header")
            staged.seek(0)
            tar = await asyncio.to_thread(open_staged, staged)
            with tar.file:
                verified = 0
                yield Progress("verifying", 0, tar.content_bytes, "bytes")
                async for step in tar.verify():
                    verified += step
                    if time.monotonic() - reported > PROGRESS_SECONDS:
                        reported = time.monotonic()
                        yield Progress("verifying", verified, tar.content_bytes, "bytes")
                namespace = check_namespace(target or tar.manifest.namespace)
                counts = ImportCounts()
                stored: dict[str, StoredBlob] = {}
                pins: list[str] = []
                new_bytes = 0
                try:
                    blob_events = _store_blobs(
                        self.pins,
                        self.blobs,
                        tar,
                        namespace,
                        stored,
                        pins,
                        self.limits.budget(),
                    )
                    async for event in blob_events:
                        if isinstance(event, Progress):
                            yield event
                        elif event is not None:  # a blob the store did not hold, its size
                            new_bytes += event
                            counts[BLOBS].imported += 1
                    counts[BLOBS].skipped = len(stored) - counts[BLOBS].imported
                    rows = ImportRows(tar, namespace, stored, self.limits.budget())
                    task = asyncio.create_task(
                        self.rows.import_rows(
                            ImportRequest(namespace, policy, actor), rows.batches()
                        )
                    )
                    try:
                        async for progress in _progress_until(rows, task):
                            yield progress
                        written = task.result()
                        self.wakeups.rows_imported(namespace, rows.collections, rows.queues)
                    finally:
                        if not task.done():
                            task.cancel()
                            with contextlib.suppress(BaseException):
                                await task
                        await asyncio.shield(self.forget(namespace))
                finally:
                    await asyncio.shield(_unpin(self.pins, namespace, pins))
        for kind, count in written.kinds.items():
            if kind != BLOBS:
                counts.kinds[kind] = count
        yield ImportOutcome(namespace, tar.manifest.namespace, counts, received, new_bytes)


async def _chunks(parts: AsyncIterator[ImportHeader | bytes | None]) -> AsyncIterator[bytes]:
    async for part in parts:
        if not isinstance(part, bytes):
            raise InvalidArgument.field("header", "was sent twice; send it once, first")
        yield part


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the archive is larger than the server's import limit of {limit} bytes "
        "(STRATA_MAX_IMPORT_BYTES)",
        metadata={"limit": str(limit)},
    )


async def _store_blobs(
    db: ArtifactStore,
    blobs: BlobStore,
    tar: StagedTar,
    namespace: str,
    stored: dict[str, StoredBlob],
    pins: list[str],
    budget: RowBudget,
) -> AsyncIterator[Progress | int | None]:
    """Put each blob member into the blob store (pinned first); yields progress and,
    per blob, its size when newly stored or None when the store held it already."""
    content_types = await asyncio.to_thread(content_types_of, tar, budget)
    names = [m for m in tar.manifest.members if BLOB_NAME_RE.fullmatch(m.name)]
    missing = set(content_types) - {m.sha256 for m in names}
    if missing:
        raise BadArchive(f"an artifact names blob {sorted(missing)[0]}, which the archive lacks")
    total = sum(m.size for m in names)
    done = 0
    reported = time.monotonic()
    yield Progress("blobs", 0, total, "bytes")
    for member in names:
        sha256 = member.sha256
        upload_id = f"import-{new_id()}"
        await db.pin_blob(namespace, upload_id, sha256, datetime.now(UTC) + PIN_TTL)
        pins.append(upload_id)
        held = await blobs.stat(sha256)
        staging = blobs.stage(
            content_types.get(sha256, "application/octet-stream"), sha256, sink=held is not None
        )
        try:
            handle = tar.read(member.name)
            while data := await asyncio.to_thread(read_piece, handle, member.name):
                await staging.write(data)
                done += len(data)
                if time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    yield Progress("blobs", done, total, "bytes")
            staged = await staging.finish()
            if staged.sha256 != sha256 or staged.size != member.size:
                raise BadArchive(f"{member.name} does not hash to its name")
            stored[sha256] = await staging.publish()
        finally:
            await asyncio.shield(staging.discard())
        yield None if held is not None else member.size
    yield Progress("blobs", done, total, "bytes")


async def _progress_until(rows: ImportRows, task: asyncio.Task[Any]) -> AsyncIterator[Progress]:
    """Row progress every PROGRESS_SECONDS while `task` runs (it is awaited by the
    caller); the task's failure is raised."""
    yield Progress("rows", 0, rows.total, "rows")
    while not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), PROGRESS_SECONDS)
        if not task.done():
            yield Progress("rows", rows.done, rows.total, "rows")
    if task.exception() is None:
        yield Progress("rows", rows.done, rows.total, "rows")


async def _unpin(db: ArtifactStore, namespace: str, pins: list[str]) -> None:
    for upload_id in pins:
        with contextlib.suppress(StrataError):  # they expire anyway
            await db.unpin_blob(namespace, upload_id)
