"""Uploads to S3: one multipart upload per `BlobStaging`.

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
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from strata_server.core.artifact_rules import StagedBlob, StoredBlob
from strata_server.core.errors import Conflict, Unavailable
from strata_server.storage.blobs import encoding, layout
from strata_server.storage.blobs.s3_responses import READ_SIZE, STAGING, translate

if TYPE_CHECKING:
    from minio import Minio


class StagingHost(Protocol):
    """What an upload needs of the store it stages into (`s3.S3BlobStore`): named
    here so that this module does not import the store that imports it."""

    client: Minio
    bucket: str
    endpoint: str
    part_size: int

    def ensure_bucket_sync(self) -> None: ...

    def publishing(self, sha256: str) -> asyncio.Lock: ...

    async def run(self, function: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def stat(self, sha256: str) -> StoredBlob | None: ...

    def copy_sync(self, source: str, target: str, size: int) -> None: ...


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
memory per upload for no faster upload (bench/artifacts.py's S3 shape measures
both), because the pipe already overlaps receiving one part with sending the
previous one."""


class _Aborted(Exception):
    """Raised inside put_object's reads to make the SDK abort the multipart upload."""


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

    def __init__(self, store: StagingHost, content_type: str, sha256: str | None, sink: bool):
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


def _settle(future: asyncio.Future[Any], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
