"""ExportNamespace: a namespace's rows and blobs, streamed out as one tar (the
transfer format: core/transfer_format.py).

Memory stays bounded by a batch of rows and a chunk of bytes, whatever the
namespace's size:

1. The database port reads every kind from one snapshot, in batches. Each kind's
   rows become a gzip-compressed JSON Lines member, spooled to a temporary file
   while it is hashed (a tar header needs the size before the bytes), then streamed
   out. A namespace is thus on disk at most one compressed member at a time.
2. Each distinct blob the artifacts name is streamed from the blob store straight
   into the tar (its size is known from the artifact row), hashed on the way;
   bytes that do not hash to the blob's name stop the export with DATA_LOSS.
3. manifest.json comes last, with the size and sha256 of every member.

Archived transcripts' entries are not rows of the snapshot: they are read from
their segments and written after the hot entries (`ArchivedEntries`).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import IO

from strata_server import __version__
from strata_server.core.artifact_rules import BlobRef
from strata_server.core.errors import Conflict, DataLoss
from strata_server.core.models import Progress, ServerFacts
from strata_server.core.transfer_format import (
    BLOBS,
    KINDS,
    MANIFEST,
    VERSION,
    Kind,
    Manifest,
    Member,
    blob_member,
    dumps_line,
    member_name,
)
from strata_server.core.transfer_row_encoding import encode
from strata_server.core.transfer_rows import RowBatch
from strata_server.core.values import frozen
from strata_server.services import transfer_tar as tar
from strata_server.services.archive_service import Archiver
from strata_server.storage.ports import BlobStore, TransferStore

CHUNK = 256 << 10
"""Bytes of the tar per stream message."""
GZIP_LEVEL = 1
"""zlib level of the JSON Lines members: the fastest. Encoding rows as JSON costs far
more than compressing them at this level (bench/RESULTS.md, export), so a higher
level would only add CPU to an export bound by the encoding."""
PROGRESS_SECONDS = 0.25


@frozen
class ExportSummary:
    """What an export holds: the last thing it yields."""

    namespace: str
    owner: str
    counts: Mapping[str, int]
    archive_bytes: int
    format_version: int = VERSION


@dataclass(slots=True)
class _Out:
    """Coalesces the tar's bytes into CHUNK-sized pieces and counts them."""

    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    total: int = 0

    def add(self, data: bytes) -> list[bytes]:
        self.pending.append(data)
        self.size += len(data)
        self.total += len(data)
        if self.size < CHUNK:
            return []
        return [self.flush()]

    def flush(self) -> bytes:
        data = b"".join(self.pending)
        self.pending, self.size = [], 0
        return data


class _Spool:
    """One JSON Lines member being written: gzip-compressed into a temp file, hashed."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        # Closed by _emit once streamed, or by the export when it fails first.
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.hash = hashlib.sha256()
        self.size = 0
        self.rows = 0
        self._zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing

    def _put(self, data: bytes) -> None:
        if data:
            self.file.write(data)
            self.hash.update(data)
            self.size += len(data)

    def write(self, batch: RowBatch) -> None:
        """Encode and compress one batch (run in a worker thread)."""
        lines = b"".join(dumps_line(encode(self.kind, row)) for row in batch.rows)
        self._put(self._zip.compress(lines))
        self.rows += len(batch.rows)

    def close(self) -> Member:
        """Finish the gzip stream; the member as the manifest lists it."""
        self._put(self._zip.flush())
        self.file.seek(0)
        return Member(member_name(self.kind), self.size, self.hash.hexdigest(), self.rows)


@frozen
class NamespaceExport:
    """Runs ExportNamespace against the row and blob ports."""

    rows: TransferStore
    blobs: BlobStore
    _: KW_ONLY
    facts: Callable[[], Awaitable[ServerFacts]]
    archive: Archiver | None = None
    """Reads archived transcripts' entries from their segments."""

    async def run(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[Progress | bytes | ExportSummary]:
        """The export of `namespace` (with `owner`, only what that owner holds):
        progress, chunks of the tar, then the summary. The manifest names the server
        version and backends the export came from."""
        archived = None
        if self.archive is not None:
            found = await self.archive.archive_rows.archived_transcripts(namespace, owner)
            archived = ArchivedEntries(self.archive, namespace, owner, found) if found else None
        facts = await self.facts()
        source = {"version": __version__, "database": facts.backend, "blobs": self.blobs.kind}
        async for event in export_namespace(
            self.rows, self.blobs, namespace, owner, source=source, archived=archived
        ):
            yield event


@frozen
class ArchivedEntries:
    """The entries of the archived transcripts an export holds, which are in their
    segments, not in the rows of the export's snapshot. `tiers` (id: archive_time,
    next_seq) was read before the snapshot began; it is read again once the entries
    are written, after the snapshot began: unchanged, the snapshot saw exactly these
    transcripts archived (any archive or restore between changes an archive_time),
    else the export stops with ABORTED (try again)."""

    archive: Archiver
    namespace: str
    owner: str | None
    tiers: Mapping[str, tuple[datetime, int]]

    @property
    def count(self) -> int:
        """How many entries they hold."""
        return sum(next_seq - 1 for _, next_seq in self.tiers.values())

    async def batches(self) -> AsyncIterator[RowBatch]:
        """Their entries, one segment's at a time, each transcript's in seq order."""
        for id in sorted(self.tiers):
            async for rows in self.archive.exported(self.namespace, id):
                yield RowBatch(Kind.ENTRIES, rows)
        now = await self.archive.archive_rows.archived_transcripts(self.namespace, self.owner)
        if now != self.tiers:
            raise Conflict(
                "transcripts were archived or restored while the namespace was exported; "
                "export again"
            )


async def export_namespace(
    db: TransferStore,
    blobs: BlobStore,
    namespace: str,
    owner: str | None,
    *,
    source: Mapping[str, str],
    archived: ArchivedEntries | None = None,
) -> AsyncIterator[Progress | bytes | ExportSummary]:
    """Progress messages and chunks (concatenated, the tar), then the
    summary. See the module docstring for the order of work; the entries of
    `archived` follow the hot ones in the entries member."""
    started = datetime.now(UTC)
    rows = db.export_rows(namespace, owner)
    spool: _Spool | None = None
    try:
        first = await anext(rows)
        assert isinstance(first, dict), "export_rows yields the counts first"
        counts = dict(first)
        if archived is not None:
            counts[Kind.ENTRIES] += archived.count
        out = _Out()
        members: list[Member] = []
        refs: dict[str, BlobRef] = {}
        total_rows = sum(counts[kind] for kind in KINDS)
        done = 0
        reported = time.monotonic()
        yield Progress("rows", 0, total_rows, "rows")
        pending = list(KINDS)
        async for batch in rows:
            assert isinstance(batch, RowBatch)
            while spool is None or spool.kind is not batch.kind:
                if spool is not None:
                    done += await _archived_into(spool, archived)
                    async for chunk in _emit(spool, members, out, started):
                        yield chunk
                spool = _Spool(pending.pop(0))
            await asyncio.to_thread(spool.write, batch)
            if batch.kind is Kind.ARTIFACTS:
                for artifact in batch.rows:
                    refs.setdefault(artifact.sha256, artifact.blob)
            done += len(batch.rows)
            if time.monotonic() - reported > PROGRESS_SECONDS:
                reported = time.monotonic()
                yield Progress("rows", done, total_rows, "rows")
    except BaseException:
        if spool is not None:
            spool.file.close()
        raise
    finally:
        await rows.aclose()  # type: ignore[attr-defined]
    while spool is not None or pending:
        if spool is None:
            spool = _Spool(pending.pop(0))
        done += await _archived_into(spool, archived)
        async for chunk in _emit(spool, members, out, started):
            yield chunk
        spool = None
    yield Progress("rows", done, total_rows, "rows")

    blob_bytes = sum(ref.size for ref in refs.values())
    sent = 0
    yield Progress("blobs", 0, blob_bytes, "bytes")
    for sha256 in sorted(refs):
        ref = refs[sha256]
        async for piece in _blob(blobs, ref, members, out, started):
            if isinstance(piece, int):
                sent += piece
                if time.monotonic() - reported > PROGRESS_SECONDS:
                    reported = time.monotonic()
                    yield Progress("blobs", sent, blob_bytes, "bytes")
            else:
                yield piece
    yield Progress("blobs", sent, blob_bytes, "bytes")

    counts[BLOBS] = len(refs)
    counts.pop("blob_bytes", None)
    manifest = Manifest(
        namespace=namespace,
        owner=owner or "",
        create_time=started,
        members=tuple(members),
        counts=counts,
        source=source,
    ).to_bytes()
    for data in (
        tar.header(MANIFEST, len(manifest), started),
        manifest,
        tar.padding(len(manifest)),
    ):
        for chunk in out.add(data):
            yield chunk
    for chunk in out.add(tar.END):
        yield chunk
    if out.size:
        yield out.flush()
    yield ExportSummary(namespace, owner or "", counts, out.total)


async def _archived_into(spool: _Spool, archived: ArchivedEntries | None) -> int:
    """Before the entries member closes: the archived transcripts' entries."""
    if spool.kind is not Kind.ENTRIES or archived is None:
        return 0
    written = 0
    async for batch in archived.batches():
        await asyncio.to_thread(spool.write, batch)
        written += len(batch.rows)
    return written


async def _emit(
    spool: _Spool, members: list[Member], out: _Out, mtime: datetime
) -> AsyncIterator[bytes]:
    """Close a spooled member and stream it out: header, bytes, padding."""
    try:
        member = await asyncio.to_thread(spool.close)
        members.append(member)
        for chunk in out.add(tar.header(member.name, member.size, mtime)):
            yield chunk
        while data := await asyncio.to_thread(spool.file.read, CHUNK):
            for chunk in out.add(data):
                yield chunk
        for chunk in out.add(tar.padding(member.size)):
            yield chunk
    finally:
        spool.file.close()


async def _blob(
    blobs: BlobStore, ref: BlobRef, members: list[Member], out: _Out, mtime: datetime
) -> AsyncIterator[bytes | int]:
    """A blob's member as chunks of the tar, interleaved with how many content bytes
    each step read (for progress)."""
    name = blob_member(ref.sha256)
    for chunk in out.add(tar.header(name, ref.size, mtime)):
        yield chunk
    digest = hashlib.sha256()
    size = 0
    if ref.size:
        pieces = await blobs.open(ref, 0, ref.size)
        try:
            async for piece in pieces:
                digest.update(piece)
                size += len(piece)
                for chunk in out.add(piece):
                    yield chunk
                yield len(piece)
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
    if size != ref.size or digest.hexdigest() != ref.sha256:
        raise DataLoss(
            f"the stored bytes of blob {ref.sha256} no longer match it (read {size} of "
            f"{ref.size} bytes); run CheckIntegrity with verify_blobs",
            metadata={"sha256": ref.sha256},
        )
    members.append(Member(name, size, ref.sha256))
    for chunk in out.add(tar.padding(size)):
        yield chunk
