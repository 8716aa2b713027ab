"""The S3 blob store (MinIO or any S3), through the blocking `minio` SDK run in threads.

Keys follow `layout`: `blobs/sha256/ab/cd/<sha256>[.zst]`. Only the standard S3 API
is used (multipart PUT, ranged GET, copy, list, presign), so MinIO, AWS and moto all
serve it.

The bucket is created if missing, checked again after any failure (an endpoint that
comes back empty gets its bucket back). Connection failures are retried briefly
(`RETRIES`), then reported as Unavailable, so artifact calls fail fast while the
endpoint is down and work again as soon as it is back.

Uploads: `s3_upload.py`; what comes back from the SDK (errors, bodies): `s3_responses.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Generator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.error import S3Error

from strata_server.core.artifact_rules import BlobMissing, BlobRef, Compression, StoredBlob
from strata_server.core.errors import StrataError, Unavailable
from strata_server.storage.blobs import encoding, inspection, layout, threads
from strata_server.storage.blobs.s3_responses import (
    MAX_COPY,
    MISSING,
    RETRIES,
    STAGING,
    empty,
    quoted,
    read_all,
    stored_blob,
    stream_frames,
    stream_raw,
    translate,
)
from strata_server.storage.blobs.s3_upload import S3Staging, part_size

if TYPE_CHECKING:
    from strata_server.storage.ports import BlobStaging, BlobStore

STANDARD = "STANDARD"
"""S3's default storage class (a HEAD reports no class for it)."""


class S3BlobStore:
    """`BlobStore` on an S3 bucket."""

    kind = "s3"

    def __init__(
        self,
        client: Minio,
        bucket: str,
        endpoint: str,
        max_object: int,
        archive_class: str = "STANDARD_IA",
    ) -> None:
        self.client = client
        self.archive_class = archive_class
        """The storage class archived blobs are kept in (STRATA_S3_ARCHIVE_STORAGE_CLASS)."""
        self.part_size = part_size(max_object)
        """Multipart part size for uploads."""
        self.bucket = bucket
        self.endpoint = endpoint
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        self._publishing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def publishing(self, sha256: str) -> asyncio.Lock:
        """The lock an upload holds while it publishes `sha256` (one per blob, while used)."""
        lock = self._publishing.get(sha256)
        if lock is None:
            lock = self._publishing[sha256] = asyncio.Lock()
        return lock

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool,
        region: str,
        max_object: int,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        archive_class: str = "STANDARD_IA",
    ) -> S3BlobStore:
        """A client for the endpoint; the bucket is created now if reachable, else on
        first use (an unreachable S3 must not stop the records and queue from serving).

        A request waits `connect_timeout` seconds for its connection and `read_timeout`
        for each read of the response. A read that times out is not retried (an S3
        that froze mid-answer will not answer the retry sooner), so a frozen S3 costs
        a caller about one read timeout, then UNAVAILABLE."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=32,
            retries=urllib3.Retry(
                total=RETRIES,
                read=0,
                backoff_factor=0.1,
                status_forcelist=(500, 502, 503, 504),
            ),
        )
        client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        store = cls(client, bucket, endpoint, max_object, archive_class)
        with contextlib.suppress(Unavailable):
            await asyncio.to_thread(store.ensure_bucket_sync)
        return store

    def ensure_bucket_sync(self) -> None:
        """Create the bucket if it is missing (checked once, and again after errors)."""
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return
            try:
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket)
                    except S3Error as error:
                        if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            except Exception as error:
                raise translate(error, self.endpoint) from error
            self._bucket_ready = True

    async def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK in a thread, translating its errors; a failure makes the next
        call check the bucket again."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as error:
            if not isinstance(error, StrataError | S3Error) or (
                isinstance(error, S3Error) and error.code == "NoSuchBucket"
            ):
                self._bucket_ready = False
            raise translate(error, self.endpoint) from error

    def stage(self, content_type: str, sha256: str | None, *, sink: bool) -> BlobStaging:
        """A multipart upload for one upload (started when the first part's bytes come)."""
        return S3Staging(self, content_type, sha256, sink)

    def _stat_sync(self, sha256: str) -> StoredBlob | None:
        self.ensure_bucket_sync()
        for item in self.client.list_objects(self.bucket, prefix=layout.prefix(sha256)):
            parsed = layout.parse(item.object_name or "")
            if parsed is not None and parsed[0] == sha256:
                return stored_blob(item, *parsed)
        return None

    async def stat(self, sha256: str) -> StoredBlob | None:
        """The stored blob with that SHA-256 (one LIST request), or None."""
        return cast(StoredBlob | None, await self.run(self._stat_sync, sha256))

    def copy_sync(self, source: str, target: str, size: int) -> None:
        """Server-side copy of one object (composed in parts past 5 GiB)."""
        if size <= MAX_COPY:
            self.client.copy_object(self.bucket, target, CopySource(self.bucket, source))
        else:
            self.client.compose_object(self.bucket, target, [ComposeSource(self.bucket, source)])

    def _set_class_sync(self, blob: BlobRef, storage_class: str) -> None:
        key = layout.key(blob.sha256, blob.compression)
        try:
            current = self.client.stat_object(self.bucket, key).metadata or {}
        except S3Error as error:
            if error.code in MISSING:
                raise BlobMissing(f"the content of sha256 {blob.sha256} is missing") from None
            raise
        if current.get("x-amz-storage-class", STANDARD) == storage_class:
            return  # S3 refuses a copy onto itself that changes nothing
        # Past 5 GiB the SDK composes the copy in parts itself.
        header: dict[str, str | list[str] | tuple[str]] = {"x-amz-storage-class": storage_class}
        self.client.copy_object(self.bucket, key, CopySource(self.bucket, key), metadata=header)

    async def set_storage_class(self, blob: BlobRef, *, cold: bool) -> None:
        """An in-place server-side copy into `archive_class` (`cold`) or STANDARD,
        when the object is not in that class already (one HEAD, then one COPY)."""
        storage_class = self.archive_class if cold else STANDARD
        await self.run(self._set_class_sync, blob, storage_class)

    def _get(self, key: str, offset: int, length: int) -> Any:
        return self.client.get_object(self.bucket, key, offset=offset, length=length)

    async def open(self, blob: BlobRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Content bytes [start, end) by ranged GETs (for compressed blobs: the seek
        table, then only the frames the range touches)."""
        key = layout.key(blob.sha256, blob.compression)
        if start == end:
            await self.run(self.client.stat_object, self.bucket, key)
            return empty()
        if blob.compression is Compression.NONE:
            response = await self.run(self._get, key, start, end - start)
            return threads.iterate(stream_raw(response, end - start), self._translate)
        length = encoding.table_size(encoding.frame_count(blob.size))
        response = await self.run(self._get, key, blob.stored_size - length, length)
        tail = await self.run(read_all, response)
        try:
            table = encoding.parse_table(tail)
        except encoding.BadTable as error:
            raise BlobMissing(
                f"the stored content of sha256 {blob.sha256} is damaged: {error}"
            ) from None
        span = encoding.span(table, start, end)
        response = await self.run(self._get, key, span.start, span.end - span.start)
        return threads.iterate(stream_frames(response, span, end - start), self._translate)

    def _translate(self, error: Exception) -> Exception:
        return translate(error, self.endpoint)

    async def delete(self, blob: StoredBlob) -> None:
        """Remove a blob (S3 deletes of a missing key succeed)."""
        await self.run(
            self.client.remove_object, self.bucket, layout.key(blob.sha256, blob.compression)
        )

    def _list_sync(self) -> Generator[list[StoredBlob], None, None]:
        self.ensure_bucket_sync()
        batch: list[StoredBlob] = []
        for item in self.client.list_objects(self.bucket, prefix=layout.ROOT + "/", recursive=True):
            parsed = layout.parse(item.object_name or "")
            if parsed is not None:
                batch.append(stored_blob(item, *parsed))
            if len(batch) >= 1000:
                yield batch
                batch = []
        yield batch

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, a LIST page per thread hop."""
        async for batch in threads.iterate(self._list_sync(), self._translate):
            for blob in batch:
                yield blob

    def _inspect_sync(self, blob: StoredBlob, content: bool, size: int | None) -> str | None:
        key = layout.key(blob.sha256, blob.compression)

        def read(offset: int, length: int) -> bytes:
            if length <= 0:
                return b""
            return read_all(self._get(key, offset, length))

        try:
            return inspection.inspect(blob, read, content=content, size=size)
        except S3Error as error:
            if error.code in MISSING:
                return None  # swept since it was listed: nothing stored to be wrong
            raise

    async def inspect(
        self, blob: StoredBlob, *, content: bool, size: int | None = None
    ) -> str | None:
        """What is wrong with a blob's stored bytes (storage/blobs/inspection.py), by
        ranged GETs: the frame index's two, then with `content` one per frame."""
        return cast(str | None, await self.run(self._inspect_sync, blob, content, size))

    async def presign(
        self, blob: BlobRef, expiry: timedelta, content_type: str, filename: str
    ) -> str:
        """A presigned GET of the stored object, with the artifact's content type and
        file name (and `Content-Encoding: zstd` for compressed blobs)."""
        headers = {
            "response-content-type": content_type,
            "response-content-disposition": f'attachment; filename="{quoted(filename)}"',
        }
        if blob.compression is Compression.ZSTD:
            headers["response-content-encoding"] = "zstd"
        return cast(
            str,
            await self.run(
                self.client.presigned_get_object,
                self.bucket,
                layout.key(blob.sha256, blob.compression),
                expires=expiry,
                response_headers=headers,
            ),
        )

    def _remove_stale_sync(self, older_than: datetime) -> int:
        self.ensure_bucket_sync()
        removed = 0
        for item in self.client.list_objects(self.bucket, prefix=STAGING, recursive=True):
            if item.last_modified is not None and item.last_modified < older_than:
                self.client.remove_object(self.bucket, item.object_name or "")
                removed += 1
        return removed

    async def remove_stale_staging(self, older_than: datetime) -> int:
        """Remove staging objects of crashed uploads. (Incomplete multipart uploads of
        crashed servers are the bucket's lifecycle rule's job: AbortIncompleteMultipartUpload.)"""
        return cast(int, await self.run(self._remove_stale_sync, older_than))

    async def close(self) -> None:
        """Release the HTTP connection pool."""
        http = getattr(self.client, "_http", None)
        if http is not None:
            http.clear()


if TYPE_CHECKING:

    def _satisfies_port(store: S3BlobStore, staging: S3Staging) -> tuple[BlobStore, BlobStaging]:
        """mypy proves here that the classes implement their ports."""
        return store, staging
