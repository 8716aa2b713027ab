"""The local-disk blob store: the embedded shape's default, under the data directory.

    <data_dir>/blobs/sha256/ab/cd/<sha256>[.zst]   published blobs (see `layout`)
    <data_dir>/blobs/tmp/<random>                  uploads being staged

An upload writes a temporary file while hashing (and maybe compressing), fsyncs
it, then publishes it with `link(2)` to its final name: atomic, and it fails when
the name exists, so two uploads of the same content cannot clobber each other and a
reader never sees a partial blob. The directory is fsynced after the link; the
temporary name is unlinked when the upload ends, whatever happened.

`DiskBlobStore.temporary()` is the store of the memory shape (`sqlite://:memory:`):
the same layout in a fresh temporary directory (under TMPDIR) that `close` removes,
so a throwaway server leaves nothing behind where it ran.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from strata_server.core.artifact_rules import (
    BlobMissing,
    BlobRef,
    Compression,
    StagedBlob,
    StoredBlob,
)
from strata_server.core.errors import Conflict, FailedPrecondition, StrataError, Unavailable
from strata_server.storage.blobs import encoding, inspection, layout, threads

if TYPE_CHECKING:
    from strata_server.storage.ports import BlobStaging, BlobStore

READ_SIZE = 256 << 10


def translate(error: Exception) -> Exception:
    """OS errors become Unavailable (the disk is full, read-only, gone); domain
    errors pass through."""
    if isinstance(error, StrataError):
        return error
    if isinstance(error, OSError):
        if error.errno == errno.ENOSPC:
            return Unavailable("the disk holding the blob directory is full")
        return Unavailable(f"the blob directory cannot be used: {error}")
    return error


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stored(path: Path, sha256: str, compression: Compression) -> StoredBlob | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return StoredBlob(sha256, compression, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))


class DiskStaging:
    """One upload's temporary file (`BlobStaging`)."""

    def __init__(self, store: DiskBlobStore, content_type: str, sink: bool) -> None:
        self._store = store
        self._encoder = encoding.Encoder(content_type)
        self._sink = sink
        self._path = store.tmp / secrets.token_hex(16)
        self._file: IO[bytes] | None = None
        self._staged: StagedBlob | None = None

    def _write_sync(self, data: bytes) -> None:
        out = self._encoder.feed(data)
        if out and not self._sink:
            if self._file is None:
                self._file = self._path.open("xb")
            self._file.write(out)

    async def write(self, chunk: bytes) -> None:
        """Hash, maybe compress, and append to the temporary file."""
        try:
            await asyncio.to_thread(self._write_sync, chunk)
        except OSError as error:
            raise translate(error) from error

    def _finish_sync(self) -> StagedBlob:
        out, staged = self._encoder.finish()
        if not self._sink:
            if self._file is None:
                self._file = self._path.open("xb")
            self._file.write(out)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        return staged

    async def finish(self) -> StagedBlob:
        """Flush and fsync the temporary file; nothing is visible yet."""
        try:
            self._staged = await asyncio.to_thread(self._finish_sync)
        except OSError as error:
            raise translate(error) from error
        return self._staged

    def _publish_sync(self, staged: StagedBlob) -> StoredBlob:
        existing = self._store.stat_sync(staged.sha256)
        if existing is not None:
            return existing
        if self._sink:
            raise Conflict("the stored content was removed while this upload ran; retry the upload")
        final = self._store.root / layout.key(staged.sha256, staged.compression)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self._path, final)
        except FileExistsError:
            pass  # a concurrent upload of the same content published first
        else:
            _fsync_dir(final.parent)
        stored = _stored(final, staged.sha256, staged.compression)
        if stored is None:  # pragma: no cover - removed between link and stat
            raise Conflict("the blob was removed while it was published; retry the upload")
        return stored

    async def publish(self) -> StoredBlob:
        """Link the temporary file to its final name, unless the blob exists."""
        if self._staged is None:
            raise RuntimeError("publish before finish")
        try:
            return await asyncio.to_thread(self._publish_sync, self._staged)
        except OSError as error:
            raise translate(error) from error

    def _discard_sync(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)

    async def discard(self) -> None:
        """Remove the temporary file (a published blob keeps its own link)."""
        await asyncio.to_thread(self._discard_sync)


class DiskBlobStore:
    """`BlobStore` on a local directory."""

    kind = "disk"

    def __init__(self, data_dir: Path, *, owned: bool = False) -> None:
        self.root = data_dir
        self.blobs = data_dir / layout.ROOT
        self.tmp = data_dir / "blobs" / "tmp"
        self._owned = owned

    @classmethod
    async def connect(cls, data_dir: Path) -> DiskBlobStore:
        """Create the directories if missing; Unavailable if that fails."""
        store = cls(data_dir)
        try:
            await asyncio.to_thread(store.blobs.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(store.tmp.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise translate(error) from error
        return store

    @classmethod
    async def temporary(cls) -> DiskBlobStore:
        """A store in a new temporary directory, removed with everything in it by
        `close`: the blobs of a server that keeps nothing."""
        try:
            path = await asyncio.to_thread(tempfile.mkdtemp, prefix="strata-blobs-")
        except OSError as error:
            raise translate(error) from error
        store = cls(Path(path), owned=True)
        try:
            await asyncio.to_thread(store.blobs.mkdir, parents=True)
            await asyncio.to_thread(store.tmp.mkdir, parents=True)
        except OSError as error:
            await store.close()
            raise translate(error) from error
        return store

    def stage(self, content_type: str, sha256: str | None, *, sink: bool) -> BlobStaging:
        """A temporary file for one upload (nothing is created until bytes come)."""
        return DiskStaging(self, content_type, sink)

    def stat_sync(self, sha256: str) -> StoredBlob | None:
        """`stat`, blocking."""
        for compression in Compression:
            found = _stored(self.root / layout.key(sha256, compression), sha256, compression)
            if found is not None:
                return found
        return None

    async def stat(self, sha256: str) -> StoredBlob | None:
        """The stored blob with that SHA-256, or None."""
        try:
            return await asyncio.to_thread(self.stat_sync, sha256)
        except OSError as error:
            raise translate(error) from error

    def _open_sync(self, blob: BlobRef) -> IO[bytes]:
        try:
            return (self.root / layout.key(blob.sha256, blob.compression)).open("rb")
        except FileNotFoundError:
            raise BlobMissing(
                f"the content of this artifact (sha256 {blob.sha256}) is missing from the "
                "blob directory"
            ) from None

    async def open(self, blob: BlobRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Content bytes [start, end); raw blobs by seek, compressed ones by frame."""
        try:
            file = await asyncio.to_thread(self._open_sync, blob)
        except OSError as error:
            raise translate(error) from error
        if blob.compression is Compression.NONE:
            return threads.iterate(_read_raw(file, start, end), translate)
        return threads.iterate(_read_frames(file, blob, start, end), translate)

    def _delete_sync(self, blob: StoredBlob) -> None:
        (self.root / layout.key(blob.sha256, blob.compression)).unlink(missing_ok=True)

    async def delete(self, blob: StoredBlob) -> None:
        """Unlink a blob (nothing if already gone)."""
        try:
            await asyncio.to_thread(self._delete_sync, blob)
        except OSError as error:
            raise translate(error) from error

    def _walk(self) -> Generator[list[StoredBlob], None, None]:
        for top in sorted(self.blobs.iterdir()) if self.blobs.exists() else []:
            batch: list[StoredBlob] = []
            for directory, _, files in os.walk(top):
                for name in files:
                    parsed = layout.parse(name)
                    if parsed is not None:
                        found = _stored(Path(directory) / name, *parsed)
                        if found is not None:
                            batch.append(found)
            yield batch

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, one top-level fan-out directory per thread hop."""
        async for batch in threads.iterate(self._walk(), translate):
            for blob in batch:
                yield blob

    def _inspect_sync(self, blob: StoredBlob, content: bool, size: int | None) -> str | None:
        try:
            file = (self.root / layout.key(blob.sha256, blob.compression)).open("rb")
        except FileNotFoundError:
            return None  # swept since it was listed: nothing stored to be wrong

        def read(offset: int, length: int) -> bytes:
            file.seek(offset)
            return file.read(length)

        with file:
            return inspection.inspect(blob, read, content=content, size=size)

    async def inspect(
        self, blob: StoredBlob, *, content: bool, size: int | None = None
    ) -> str | None:
        """What is wrong with a blob's stored bytes (storage/blobs/inspection.py)."""
        try:
            return await asyncio.to_thread(self._inspect_sync, blob, content, size)
        except OSError as error:
            raise translate(error) from error

    async def set_storage_class(self, blob: BlobRef, *, cold: bool) -> None:
        """Nothing: a local disk has no storage classes (the tier is only recorded)."""
        return None

    async def presign(
        self, blob: BlobRef, expiry: timedelta, content_type: str, filename: str
    ) -> str:
        """Local disk has no URLs: FailedPrecondition saying what to use instead."""
        raise FailedPrecondition(
            "presigned URLs need the S3 blob store (STRATA_S3_ENDPOINT); this server keeps "
            "blobs on local disk, so read the artifact with DownloadArtifact",
            reason="PRESIGNED_URLS_UNSUPPORTED",
        )

    def _remove_stale_sync(self, older_than: datetime) -> int:
        removed = 0
        cutoff = older_than.timestamp()
        for path in self.tmp.iterdir() if self.tmp.exists() else []:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def remove_stale_staging(self, older_than: datetime) -> int:
        """Remove temporary files of crashed uploads."""
        try:
            return await asyncio.to_thread(self._remove_stale_sync, older_than)
        except OSError as error:
            raise translate(error) from error

    async def close(self) -> None:
        """Remove the directory if this store made it (`temporary`); else nothing."""
        if self._owned:
            await asyncio.to_thread(shutil.rmtree, self.root, ignore_errors=True)


def _read_raw(file: IO[bytes], start: int, end: int) -> Generator[bytes, None, None]:
    with file:
        file.seek(start)
        left = end - start
        while left > 0:
            piece = file.read(min(READ_SIZE, left))
            if not piece:
                raise BlobMissing("the stored content is shorter than its recorded size")
            left -= len(piece)
            yield piece


def _read_frames(
    file: IO[bytes], blob: BlobRef, start: int, end: int
) -> Generator[bytes, None, None]:
    with file:
        table = _table(file, blob)
        span = encoding.span(table, start, end)
        file.seek(span.start)

        def frames() -> Generator[bytes, None, None]:
            for compressed, _ in span.sizes:
                frame = file.read(compressed)
                if len(frame) != compressed:
                    raise BlobMissing("the stored content is shorter than its seek table says")
                yield frame

        yield from encoding.decode(span, frames(), end - start)


def _table(file: IO[bytes], blob: BlobRef) -> list[tuple[int, int]]:
    length = encoding.table_size(encoding.frame_count(blob.size))
    file.seek(blob.stored_size - length)
    try:
        return encoding.parse_table(file.read(length))
    except encoding.BadTable as error:
        raise BlobMissing(
            f"the stored content of sha256 {blob.sha256} is damaged: {error}"
        ) from None


if TYPE_CHECKING:

    def _satisfies_port(
        store: DiskBlobStore, staging: DiskStaging
    ) -> tuple[BlobStore, BlobStaging]:
        """mypy proves here that the classes implement their ports."""
        return store, staging
