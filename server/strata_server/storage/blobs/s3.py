"""The S3 blob store (MinIO or any S3), through the blocking `minio` SDK run in threads.

Keys follow `layout`: `blobs/sha256/ab/cd/<sha256>[.zst]`. Only the standard S3 API
is used (multipart PUT, ranged GET, copy, list, presign), so MinIO, AWS and moto all
serve it.

**Uploads stream.** The SDK's `put_object(length=-1)` runs in a worker thread and
reads from a `_Pipe` that the event loop fills with stored bytes as chunks arrive;
it sends each part as it fills (multipart upload), one part at a time while the
pipe takes in the next. That pipe is the bounded queue between the gRPC stream and
S3: when it holds a part the event loop stops reading the stream and gRPC's flow
control holds the client back. Memory per upload is about three parts (the one
being sent, the next in the pipe, and the SDK's copy while it assembles a part),
never the object. The last part, and with it the object's
appearance, waits until the upload decides to publish: closing the pipe completes
the multipart upload (atomic: S3 shows a key only once complete); aborting the pipe
makes the SDK abort the multipart upload, so a cancelled or failed upload stores
nothing.

When the client names the SHA-256 in its header (the Python client always does),
the parts go straight to the blob's final key. Otherwise the final key is not known
until the last byte, so the parts go to `staging/<random>` and publishing is a
server-side copy to the final key (no bytes through Strata), after which the staging
object is removed.

The bucket is created if missing, checked again after any failure (an endpoint that
comes back empty gets its bucket back). Connection failures are retried briefly
(`RETRIES`), then reported as Unavailable, so artifact calls fail fast while the
endpoint is down and work again as soon as it is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import secrets
import threading
import weakref
from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import urllib3
import zstandard
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.error import MinioException, S3Error, ServerError

from strata_server.core.artifacts import (
    BlobMissing,
    BlobRef,
    Compression,
    StagedBlob,
    StoredBlob,
)
from strata_server.core.errors import Conflict, StrataError, Unavailable
from strata_server.storage.blobs import encoding, layout, threads

if TYPE_CHECKING:
    from strata_server.storage.ports import BlobStaging, BlobStore

MIN_PART = 5 << 20
"""S3's smallest multipart part; parts are this size unless the largest artifact
allowed needs bigger ones to fit in S3's 10,000 parts (`part_size`)."""
MAX_PARTS = 10_000


def part_size(max_object: int) -> int:
    """The smallest part size (whole MiB, at least 5 MiB) that fits `max_object`
    bytes in 10,000 parts: memory per upload is about twice this."""
    mib = 1 << 20
    return max(MIN_PART, -(-max_object // MAX_PARTS // mib) * mib + mib)


PARALLEL_PARTS = 1
"""Parts one upload sends at once. The SDK's default of 3 keeps two more parts in
memory per upload; measured with bench/artifacts.py's S3 shape on 1 GiB: peak
server RSS 145 MB with 3, 128 MB with 1, at the same upload rate (52-58 MB/s
either way here), because the pipe already overlaps receiving one part with
sending the previous one."""
READ_SIZE = 256 << 10
STAGING = "staging/"
MAX_COPY = 5 << 30
"""Largest object one server-side CopyObject may copy; larger ones are composed."""
RETRIES = 2
_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})


class _Aborted(Exception):
    """Raised inside put_object's reads to make the SDK abort the multipart upload."""


def translate(error: Exception, endpoint: str = "") -> Exception:
    """SDK and HTTP errors as domain errors; domain errors pass through."""
    if isinstance(error, StrataError):
        return error
    if isinstance(error, S3Error):
        if error.code in _MISSING:
            return BlobMissing("the artifact's content is missing from the S3 bucket")
        return Unavailable(f"S3 refused the request: {error.code}: {error.message}")
    if isinstance(error, ServerError):
        return Unavailable(f"the S3 endpoint failed (HTTP {error.status_code}); retry later")
    if isinstance(error, MinioException | urllib3.exceptions.HTTPError | OSError):
        where = f" at {endpoint}" if endpoint else ""
        return Unavailable(
            f"the S3 endpoint{where} cannot be reached ({type(error).__name__}); retry later"
        )
    return error


class _Pipe:
    """A blocking file-like object that `put_object` reads in a worker thread while
    the event loop feeds it. `read(n)` blocks until n bytes, end of stream or abort,
    so each part is assembled with one join instead of the SDK's repeated concat."""

    def __init__(self, limit: int) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._limit = limit
        self._cond = threading.Condition()
        self._eof = False
        self._aborted = False
        self._gone = False

    def feed(self, data: bytes) -> None:
        """Add bytes, waiting while the reader is `limit` bytes behind."""
        with self._cond:
            while self._buffered >= self._limit and not self._gone:
                self._cond.wait()
            if self._gone:
                raise _Aborted("the S3 upload has stopped")
            self._chunks.append(data)
            self._buffered += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        """End of stream: the reader gets its last bytes, then b""."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Make the next read raise (so the SDK aborts the multipart upload)."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def gone(self) -> None:
        """The reader stopped (put_object returned or failed); unblock feeders."""
        with self._cond:
            self._gone = True
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes, blocking until that many are buffered or the stream ends."""
        with self._cond:
            want = size if size >= 0 else float("inf")
            while not self._aborted and not self._eof and self._buffered < want:
                self._cond.wait()
            if self._aborted:
                raise _Aborted("upload aborted")
            out: list[bytes] = []
            taken = 0
            while self._chunks and taken < want:
                chunk = self._chunks.popleft()
                if taken + len(chunk) > want:
                    cut = int(want - taken)
                    self._chunks.appendleft(chunk[cut:])
                    chunk = chunk[:cut]
                out.append(chunk)
                taken += len(chunk)
            self._buffered -= taken
            self._cond.notify_all()
            return b"".join(out)


class S3Staging:
    """One upload's multipart upload (`BlobStaging`)."""

    def __init__(self, store: S3BlobStore, content_type: str, sha256: str | None, sink: bool):
        self._store = store
        self._content_type = content_type
        self._expected = sha256
        self._sink = sink
        self._encoder = encoding.Encoder(content_type)
        self._pipe = _Pipe(store.part_size + READ_SIZE)
        self._put: asyncio.Future[Any] | None = None
        self._key = ""
        self._staged: StagedBlob | None = None
        self._staging_key_done = False
        self._published = False

    def _start(self) -> None:
        if self._put is not None or self._sink:
            return
        compression = self._encoder.compression
        assert compression is not None
        if self._expected is not None:
            self._key = layout.key(self._expected, compression)
        else:
            self._key = f"{STAGING}{secrets.token_hex(16)}{layout.SUFFIX[compression]}"
        loop = asyncio.get_running_loop()
        self._put = loop.create_future()
        # A thread of its own, not the shared executor: it blocks on the pipe for the
        # whole upload, and the pipe is fed through the executor.
        threading.Thread(
            target=self._put_sync, args=(self._key, loop, self._put), daemon=True
        ).start()

    def _put_sync(
        self, key: str, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any]
    ) -> None:
        try:
            self._put_object(key)
        except BaseException as error:  # handed to the event loop, never lost
            loop.call_soon_threadsafe(_settle, done, error)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    def _put_object(self, key: str) -> None:
        try:
            self._store.ensure_bucket_sync()
            self._store.client.put_object(
                self._store.bucket,
                key,
                cast(BinaryIO, self._pipe),
                length=-1,
                part_size=self._store.part_size,
                content_type="application/octet-stream",
                num_parallel_uploads=PARALLEL_PARTS,
            )
        finally:
            self._pipe.gone()

    async def _feed(self, out: bytes) -> None:
        if not out or self._sink:
            return
        self._start()
        try:
            await asyncio.to_thread(self._pipe.feed, out)
        except _Aborted:
            assert self._put is not None
            outcome = await asyncio.gather(self._put, return_exceptions=True)
            failure = outcome[0]
            if isinstance(failure, Exception) and not isinstance(failure, _Aborted):
                raise translate(failure, self._store.endpoint) from failure
            raise Unavailable("the S3 upload stopped; retry later") from None

    async def write(self, chunk: bytes) -> None:
        """Hash, maybe compress, and stream into the multipart upload."""
        out = await asyncio.to_thread(self._encoder.feed, chunk)
        await self._feed(out)

    async def finish(self) -> StagedBlob:
        """All bytes are in flight except the last part; nothing is visible yet. (Into
        a staging key, the upload completes here: that key is private.)"""
        out, staged = await asyncio.to_thread(self._encoder.finish)
        self._staged = staged
        if not self._sink:
            self._start()
            await self._feed(out)
            if self._expected is None:
                self._staging_key_done = True  # set first: a cancel may land mid-complete
                await self._complete()
        return staged

    async def _complete(self) -> None:
        assert self._put is not None
        self._pipe.close()
        try:
            await self._put
        except Exception as error:
            raise translate(error, self._store.endpoint) from error

    async def publish(self) -> StoredBlob:
        """Complete (or copy into place) the blob, unless it is stored already."""
        staged = self._staged
        if staged is None:
            raise RuntimeError("publish before finish")
        # Identical uploads in this process write the object once: the first in
        # completes it, the rest find it stored and abort theirs (S3 endpoints may
        # fail concurrent completes of one key; moto answers 500).
        async with self._store.publishing(staged.sha256):
            existing = await self._store.stat(staged.sha256)
            if existing is not None:
                return existing
            if self._sink:
                raise Conflict(
                    "the stored content was removed while this upload ran; retry the upload"
                )
            final = layout.key(staged.sha256, staged.compression)
            if self._staging_key_done:
                await self._store.run(self._store.copy_sync, self._key, final, staged.stored_size)
            else:
                await self._complete()
        self._published = True
        return StoredBlob(staged.sha256, staged.compression, staged.stored_size, datetime.now(UTC))

    async def discard(self) -> None:
        """Abort an unfinished multipart upload; remove a staging object."""
        if self._put is not None and not self._put.done():
            self._pipe.abort()
            await asyncio.gather(self._put, return_exceptions=True)
        elif self._put is not None:
            await asyncio.gather(self._put, return_exceptions=True)  # retrieve its error
        if self._staging_key_done:
            self._staging_key_done = False
            await self._store.run(self._store.client.remove_object, self._store.bucket, self._key)


class S3BlobStore:
    """`BlobStore` on an S3 bucket."""

    kind = "s3"

    def __init__(self, client: Minio, bucket: str, endpoint: str, max_object: int) -> None:
        self.client = client
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
        store = cls(client, bucket, endpoint, max_object)
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
                return _stored(item, *parsed)
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

    def _get(self, key: str, offset: int, length: int) -> Any:
        return self.client.get_object(self.bucket, key, offset=offset, length=length)

    async def open(self, blob: BlobRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Content bytes [start, end) by ranged GETs (for compressed blobs: the seek
        table, then only the frames the range touches)."""
        key = layout.key(blob.sha256, blob.compression)
        if start == end:
            await self.run(self.client.stat_object, self.bucket, key)
            return _empty()
        if blob.compression is Compression.NONE:
            response = await self.run(self._get, key, start, end - start)
            return threads.iterate(_stream_raw(response), self._translate)
        length = encoding.table_size(encoding.frame_count(blob.size))
        response = await self.run(self._get, key, blob.stored_size - length, length)
        tail = await self.run(_read_all, response)
        try:
            table = encoding.parse_table(tail)
        except encoding.BadTable as error:
            raise BlobMissing(
                f"the stored content of sha256 {blob.sha256} is damaged: {error}"
            ) from None
        span = encoding.span(table, start, end)
        response = await self.run(self._get, key, span.start, span.end - span.start)
        return threads.iterate(_stream_frames(response, span, end - start), self._translate)

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
                batch.append(_stored(item, *parsed))
            if len(batch) >= 1000:
                yield batch
                batch = []
        yield batch

    async def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, a LIST page per thread hop."""
        async for batch in threads.iterate(self._list_sync(), self._translate):
            for blob in batch:
                yield blob

    def _verify_sync(self, blob: StoredBlob) -> bool:
        digest = hashlib.sha256()
        try:
            response = self.client.get_object(
                self.bucket, layout.key(blob.sha256, blob.compression)
            )
        except S3Error as error:
            if error.code in _MISSING:
                return False
            raise
        try:
            reader: Any = response
            if blob.compression is Compression.ZSTD:
                reader = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], response))
            while piece := reader.read(READ_SIZE):
                digest.update(piece)
        except zstandard.ZstdError:
            return False
        finally:
            response.close()
            response.release_conn()
        return digest.hexdigest() == blob.sha256

    async def verify(self, blob: StoredBlob) -> bool:
        """Re-hash a blob's content, streamed."""
        return cast(bool, await self.run(self._verify_sync, blob))

    async def presign(
        self, blob: BlobRef, expiry: timedelta, content_type: str, filename: str
    ) -> str:
        """A presigned GET of the stored object, with the artifact's content type and
        file name (and `Content-Encoding: zstd` for compressed blobs)."""
        headers = {
            "response-content-type": content_type,
            "response-content-disposition": f'attachment; filename="{_quoted(filename)}"',
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


def _settle(future: asyncio.Future[Any], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _stored(item: Any, sha256: str, compression: Compression) -> StoredBlob:
    modified = item.last_modified or datetime.now(UTC)
    return StoredBlob(sha256, compression, int(item.size or 0), modified)


def _quoted(name: str) -> str:
    return name.replace("\\", "_").replace('"', "_")


def _read_all(response: Any) -> bytes:
    try:
        return cast(bytes, response.read())
    finally:
        response.close()
        response.release_conn()


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _stream_raw(response: Any) -> Generator[bytes, None, None]:
    try:
        yield from response.stream(READ_SIZE)
    finally:
        response.close()
        response.release_conn()


def _stream_frames(
    response: Any, span: encoding.FrameSpan, length: int
) -> Generator[bytes, None, None]:
    def frames() -> Generator[bytes, None, None]:
        for compressed, _ in span.sizes:
            frame = response.read(compressed)
            while len(frame) < compressed:
                more = response.read(compressed - len(frame))
                if not more:
                    raise BlobMissing("the stored content is shorter than its seek table says")
                frame += more
            yield frame

    try:
        yield from encoding.decode(span, frames(), length)
    finally:
        response.close()
        response.release_conn()


if TYPE_CHECKING:

    def _satisfies_port(store: S3BlobStore, staging: S3Staging) -> tuple[BlobStore, BlobStaging]:
        """mypy proves here that the classes implement their ports."""
        return store, staging
