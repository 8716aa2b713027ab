"""What comes back from the S3 SDK: its errors as domain errors, and object bodies
read whole or streamed (decompressed frame by frame where stored compressed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from minio.error import MinioException, S3Error, ServerError

from strata_server.core.artifact_rules import BlobMissing, Compression, StoredBlob
from strata_server.core.errors import StrataError, Unavailable
from strata_server.storage.blobs import encoding

READ_SIZE = 256 << 10
STAGING = "staging/"
MAX_COPY = 5 << 30
"""Largest object one server-side CopyObject may copy; larger ones are composed."""
RETRIES = 2
MISSING = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchVersion"})


def translate(error: Exception, endpoint: str = "") -> Exception:
    """SDK and HTTP errors as domain errors; domain errors pass through."""
    if isinstance(error, StrataError):
        return error
    if isinstance(error, S3Error):
        if error.code in MISSING:
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


def stored_blob(item: Any, sha256: str, compression: Compression) -> StoredBlob:
    modified = item.last_modified or datetime.now(UTC)
    return StoredBlob(sha256, compression, int(item.size or 0), modified)


def quoted(name: str) -> str:
    return name.replace("\\", "_").replace('"', "_")


def read_all(response: Any) -> bytes:
    try:
        return cast(bytes, response.read())
    finally:
        response.close()
        response.release_conn()


async def empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def stream_raw(response: Any, length: int) -> Generator[bytes, None, None]:
    """The `length` bytes a ranged GET asked for; an object cut short (a ranged GET
    of a shorter object answers what there is, with no error) raises BlobMissing
    after its last byte, as the disk store does, instead of ending as if complete."""
    got = 0
    try:
        for chunk in response.stream(READ_SIZE):
            got += len(chunk)
            yield chunk
        if got < length:
            raise BlobMissing("the stored content is shorter than its recorded size")
    finally:
        response.close()
        response.release_conn()


def stream_frames(
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
