"""ImportNamespace: an archive streamed in, checked whole, then written all or nothing.

Order of work, and why:

1. **Stage** the stream to a temporary file, counting bytes against the limit
   (RESOURCE_EXHAUSTED past it). The manifest is the archive's last member, so
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
   and encoding of the blob as this store holds it. A few hundred KB of gzip can
   hold gigabytes of one line, so no line is read past `ImportLimits.line_bytes`,
   a batch holds at most BATCH rows and about BATCH_BYTES, and the rows of the
   whole archive decompress to at most `ImportLimits.rows_bytes`: the first excess
   is BAD_ARCHIVE, and memory stays bounded by the limits, not by the archive.
5. The record cache forgets the namespace's records (the import may have replaced
   some), and the pins are dropped.

If anything fails after step 3 began, the blobs already stored are orphans the
cleanup's sweep removes after its grace period; no row names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import tarfile
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

from strata_server.core.archive import (
    BLOB_NAME_RE,
    BLOBS,
    KINDS,
    MANIFEST,
    BadArchive,
    ConflictPolicy,
    ImportCounts,
    Kind,
    Manifest,
    member_name,
    parse_manifest,
)
from strata_server.core.archive_rows import EntryOffsets, RowBatch, decode_lines
from strata_server.core.artifacts import PIN_TTL, Artifact, StoredBlob
from strata_server.core.errors import StrataError, TooLarge
from strata_server.core.models import Actor, Progress
from strata_server.core.validation import namespace as check_namespace
from strata_server.core.validation import new_id
from strata_server.storage.composite import Storage
from strata_server.storage.ports import ArtifactStore, BlobStore

READ = 256 << 10
"""Bytes read from the staged archive at a time."""
BATCH = 1000
"""Most rows handed to the database per batch."""
BATCH_BYTES = 4 << 20
"""A batch ends once its lines hold this many bytes (or BATCH rows)."""
PROGRESS_SECONDS = 0.25
MAX_MANIFEST_BYTES = 64 << 20
"""manifest.json is read whole: it lists each member in about 150 bytes, so this
holds some 400,000 blobs."""


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What an import did: the last thing it yields."""

    namespace: str
    source_namespace: str
    counts: ImportCounts
    archive_bytes: int
    new_blob_bytes: int


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What one import may make the server hold or do.

    `archive_bytes`: the largest archive, staged whole (RESOURCE_EXHAUSTED past it).
    `line_bytes`: the longest JSON Lines row, decompressed: more than any row the
    server accepts through its API, so a longer one is a forgery. `rows_bytes`: the
    row members of one archive together, decompressed. Past either of the last two,
    BAD_ARCHIVE."""

    archive_bytes: int
    line_bytes: int
    rows_bytes: int


async def import_namespace(
    db: Storage,
    blobs: BlobStore,
    chunks: AsyncIterator[bytes],
    *,
    target: str | None,
    policy: ConflictPolicy,
    declared_size: int,
    limits: ImportLimits,
    actor: Actor,
    forget: Callable[[str], Awaitable[None]],
) -> AsyncIterator[Progress | ImportOutcome]:
    """Progress messages, then the outcome (see the module docstring)."""
    max_bytes = limits.archive_bytes
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
        archive = await asyncio.to_thread(_open, staged, limits)
        with archive.tar:
            verified = 0
            yield Progress("verifying", 0, archive.content_bytes, "bytes")
            async for step in archive.verify():
                verified += step
                if time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    yield Progress("verifying", verified, archive.content_bytes, "bytes")
            namespace = check_namespace(target or archive.manifest.namespace)
            counts = ImportCounts()
            stored: dict[str, StoredBlob] = {}
            pins: list[str] = []
            new_bytes = 0
            try:
                async for event in _store_blobs(
                    db.artifacts, blobs, archive, namespace, stored, pins
                ):
                    if isinstance(event, Progress):
                        yield event
                    elif event is not None:  # a blob the store did not hold, its size
                        new_bytes += event
                        counts[BLOBS].imported += 1
                counts[BLOBS].skipped = len(stored) - counts[BLOBS].imported
                rows = _Rows(archive, namespace, stored)
                task = asyncio.create_task(
                    db.transfer.import_rows(namespace, rows.batches(), policy, actor=actor)
                )
                try:
                    async for progress in rows.progress_until(task):
                        yield progress
                    written = task.result()
                finally:
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(BaseException):
                            await task
                    await asyncio.shield(forget(namespace))
            finally:
                await asyncio.shield(_unpin(db.artifacts, namespace, pins))
    for kind, count in written.kinds.items():
        if kind != BLOBS:
            counts.kinds[kind] = count
    yield ImportOutcome(namespace, archive.manifest.namespace, counts, received, new_bytes)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the archive is larger than the server's import limit of {limit} bytes "
        "(STRATA_MAX_IMPORT_BYTES)",
        metadata={"limit": str(limit)},
    )


class _Archive:
    """The staged tar: its members, its manifest, and checked reads of both."""

    def __init__(
        self,
        tar: tarfile.TarFile,
        manifest: Manifest,
        infos: dict[str, tarfile.TarInfo],
        limits: ImportLimits,
    ):
        self.tar = tar
        self.limits = limits
        self.manifest = manifest
        self.infos = infos
        self.members = {m.name: m for m in manifest.members}
        self.content_bytes = sum(m.size for m in manifest.members)

    def read(self, name: str) -> IO[bytes]:
        """A member's bytes as a file."""
        handle = self.tar.extractfile(self.infos[name])
        if handle is None:  # pragma: no cover - members are checked to be files
            raise BadArchive(f"{name} is not a file")
        return handle

    async def verify(self) -> AsyncIterator[int]:
        """Check every member's size and sha256 against the manifest (and a blob's
        against its name); yields bytes checked, for progress."""
        for member in self.manifest.members:
            handle = self.read(member.name)
            digest = hashlib.sha256()
            while data := await asyncio.to_thread(_read, handle, member.name):
                digest.update(data)
                yield len(data)
            blob = BLOB_NAME_RE.fullmatch(member.name)
            if digest.hexdigest() != member.sha256 or (blob and blob[1] != member.sha256):
                raise BadArchive(
                    f"{member.name} does not match its checksum in manifest.json: the archive "
                    "is corrupt",
                    metadata={"member": member.name},
                )


def _read(handle: IO[bytes], name: str) -> bytes:
    try:
        return handle.read(READ)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BadArchive(f"{name} cannot be read ({error}): the archive is truncated") from None


def _open(staged: IO[bytes], limits: ImportLimits) -> _Archive:
    """Read the tar's headers and its manifest; BadArchive for anything amiss."""
    try:
        tar = tarfile.open(fileobj=staged, mode="r:")  # noqa: SIM115 - the caller closes it
        infos = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BadArchive(f"the archive is not a readable tar ({error})") from None
    try:
        if not infos or infos[-1].name != MANIFEST:
            raise BadArchive(
                f"the archive does not end with {MANIFEST}: it is truncated or not a Strata "
                "namespace archive"
            )
        by_name: dict[str, tarfile.TarInfo] = {}
        for info in infos:
            if not info.isfile() or info.name in by_name:
                raise BadArchive(f"the archive member {info.name!r} is not expected")
            by_name[info.name] = info
        if infos[-1].size > MAX_MANIFEST_BYTES:
            raise BadArchive(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
        handle = tar.extractfile(infos[-1])
        assert handle is not None
        data = _read(handle, MANIFEST)
        while more := _read(handle, MANIFEST):
            data += more
        if len(data) != infos[-1].size:
            raise BadArchive(f"{MANIFEST} is truncated")
        manifest = parse_manifest(data)
        listed = {m.name: m for m in manifest.members}
        present = set(by_name) - {MANIFEST}
        if set(listed) != present:
            missing = sorted(set(listed) - present)[:3]
            extra = sorted(present - set(listed))[:3]
            raise BadArchive(
                f"the archive's members differ from manifest.json (missing {missing}, "
                f"unlisted {extra}): it is truncated or was altered"
            )
        for name, member in listed.items():
            if by_name[name].size != member.size:
                raise BadArchive(f"{name} has {by_name[name].size} bytes, not {member.size}")
        for kind in KINDS:
            if member_name(kind) not in listed:
                raise BadArchive(f"the archive has no {member_name(kind)}")
    except BaseException:
        tar.close()
        raise
    return _Archive(tar, manifest, by_name, limits)


async def _store_blobs(
    db: ArtifactStore,
    blobs: BlobStore,
    archive: _Archive,
    namespace: str,
    stored: dict[str, StoredBlob],
    pins: list[str],
) -> AsyncIterator[Progress | int | None]:
    """Put each blob member into the blob store (pinned first); yields progress and,
    per blob, its size when newly stored or None when the store held it already."""
    content_types = await asyncio.to_thread(_content_types, archive)
    names = [m for m in archive.manifest.members if BLOB_NAME_RE.fullmatch(m.name)]
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
            handle = archive.read(member.name)
            while data := await asyncio.to_thread(_read, handle, member.name):
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


def _content_types(archive: _Archive) -> dict[str, str]:
    """sha256 -> the content type of the first artifact naming it: the one whose
    upload stored the blob, so the store picks the same encoding again."""
    types: dict[str, str] = {}
    for batch in _decoded(archive, Kind.ARTIFACTS, "_", _Budget(archive.limits)):
        for artifact in batch:
            types.setdefault(artifact.sha256, artifact.content_type)
    return types


class _Budget:
    """The decompressed bytes one pass over an archive's rows may still read."""

    def __init__(self, limits: ImportLimits) -> None:
        self.limits = limits
        self.left = limits.rows_bytes

    def line(self, stream: gzip.GzipFile, name: str, number: int) -> bytes:
        """The next line of `stream` (b"" at its end), read no further than the limits."""
        line = stream.readline(self.limits.line_bytes + 1)
        self.left -= len(line)
        if self.left < 0:
            raise BadArchive(
                f"the archive's rows decompress to more than {self.limits.rows_bytes} bytes, "
                "the server's import limit (STRATA_MAX_IMPORT_ROWS_BYTES)",
                metadata={"limit": str(self.limits.rows_bytes)},
            )
        if len(line) > self.limits.line_bytes:
            raise BadArchive(
                f"{name}:{number}: the line is longer than {self.limits.line_bytes} bytes, "
                "more than any row this server accepts",
                metadata={"member": name, "limit": str(self.limits.line_bytes)},
            )
        return line


def _decoded(archive: _Archive, kind: Kind, namespace: str, budget: _Budget) -> Iterator[list[Any]]:
    """The rows of one member, decoded and checked, in batches of up to BATCH rows
    and about BATCH_BYTES (see the module docstring)."""
    name = member_name(kind)
    try:
        with gzip.GzipFile(fileobj=archive.read(name), mode="rb") as stream:
            first = 1
            while True:
                lines: list[bytes] = []
                size = 0
                while len(lines) < BATCH and size < BATCH_BYTES:
                    line = budget.line(stream, name, first + len(lines))
                    if not line:
                        break
                    lines.append(line)
                    size += len(line)
                if not lines:
                    return
                if not lines[-1].endswith(b"\n"):
                    raise BadArchive(f"{name}:{first + len(lines) - 1}: the last line is cut")
                yield decode_lines(kind, lines, namespace, name, first)
                first += len(lines)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        raise BadArchive(f"{name} is not a readable gzip stream ({error})") from None


class _Rows:
    """The archive's rows as batches for the database port, plus their progress."""

    def __init__(self, archive: _Archive, namespace: str, stored: dict[str, StoredBlob]):
        self.archive = archive
        self.namespace = namespace
        self.stored = stored
        self.total = sum(m.rows for m in archive.manifest.members)
        self.done = 0

    def _batches(self) -> Iterator[RowBatch]:
        transcripts: dict[str, tuple[int, int]] = {}
        budget = _Budget(self.archive.limits)
        for kind in KINDS:
            name = member_name(kind)
            offsets = EntryOffsets(transcripts) if kind is Kind.ENTRIES else None
            line = 1
            for rows in _decoded(self.archive, kind, self.namespace, budget):
                if kind is Kind.TRANSCRIPTS:
                    transcripts.update((t.id, (t.next_seq, t.size_bytes)) for t in rows)
                elif offsets is not None:
                    rows = [offsets.place(row, name, n) for n, row in enumerate(rows, line)]
                elif kind is Kind.ARTIFACTS:
                    rows = [self._restored(row) for row in rows]
                line += len(rows)
                yield RowBatch(kind, rows)
            if offsets is not None:
                offsets.finish(name)

    def _restored(self, artifact: Artifact) -> Artifact:
        blob = self.stored[artifact.sha256]
        return replace(artifact, stored_size=blob.stored_size, compression=blob.compression)

    async def batches(self) -> AsyncIterator[RowBatch]:
        """The batches, each read and decoded in a worker thread."""
        source = self._batches()
        while batch := await asyncio.to_thread(next, source, None):
            yield batch
            self.done += len(batch.rows)

    async def progress_until(self, task: asyncio.Task[Any]) -> AsyncIterator[Progress]:
        """Row progress every PROGRESS_SECONDS while `task` runs (it is awaited by the
        caller); the task's failure is raised."""
        yield Progress("rows", 0, self.total, "rows")
        while not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), PROGRESS_SECONDS)
            if not task.done():
                yield Progress("rows", self.done, self.total, "rows")
        if task.exception() is None:
            yield Progress("rows", self.done, self.total, "rows")


async def _unpin(db: ArtifactStore, namespace: str, pins: list[str]) -> None:
    for upload_id in pins:
        with contextlib.suppress(StrataError):  # they expire anyway
            await db.unpin_blob(namespace, upload_id)
