"""The blob store port: content-addressed bytes on local disk or S3."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Protocol

from strata_server.core.artifact_rules import BlobRef, StoredBlob
from strata_server.storage.ports.artifacts import BlobStaging


class BlobStore(Protocol):
    """Content-addressed bytes: local disk or S3. Blobs are named by the SHA-256 of
    their uncompressed content; both layouts are `blobs/sha256/ab/cd/<sha256>` (plus
    `.zst` when stored compressed). Driver errors become Unavailable; a blob that
    should be there and is not is BlobMissing."""

    kind: str
    """"disk" or "s3", as GetServerInfo reports it."""

    def stage(self, content_type: str, sha256: str | None, *, sink: bool) -> BlobStaging:
        """Start staging an upload. `sha256` is the caller's expected hash, if any;
        `sink` means the blob is known to be stored already: hash and discard the
        bytes instead of keeping them."""
        ...

    async def stat(self, sha256: str) -> StoredBlob | None:
        """The stored blob with that SHA-256, or None."""
        ...

    async def open(self, blob: BlobRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Content bytes [start, end) of a blob, as an iterator of pieces. The blob is
        opened before this returns (BlobMissing when it is gone)."""
        ...

    async def delete(self, blob: StoredBlob) -> None:
        """Remove a blob (nothing if already gone)."""
        ...

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, in no particular order."""
        ...

    async def inspect(
        self, blob: StoredBlob, *, content: bool, size: int | None = None
    ) -> str | None:
        """What is wrong with the blob's stored bytes, in words, or None: a compressed
        blob's frame index always (adding up to `size`, the content size its
        artifact records, when given), and with `content` whether its content (read
        by that index) still hashes to its name. A blob gone since it was listed is
        None (missing blobs are found from the rows)."""
        ...

    async def presign(
        self, blob: BlobRef, expiry: timedelta, content_type: str, filename: str
    ) -> str:
        """A presigned GET URL for the stored bytes; FailedPrecondition where the
        store has no URLs (local disk)."""
        ...

    async def set_storage_class(self, blob: BlobRef, *, cold: bool) -> None:
        """Keep the blob in the colder storage class (`cold`) or the standard one: on
        S3 an in-place copy when its class differs (the same key, so reads and URLs
        are unchanged); nothing on local disk, which has no classes. BlobMissing when
        the blob is gone."""
        ...

    async def remove_stale_staging(self, older_than: datetime) -> int:
        """Remove staging leftovers of crashed uploads last touched before the time."""
        ...

    async def close(self) -> None:
        """Release threads and connections."""
        ...
