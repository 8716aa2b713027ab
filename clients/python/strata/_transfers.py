"""`upload` and `download` for both clients: streamed, hashed, with progress.

Uploads hash a re-readable source first and ask `FindMissingBlobs`: content the
server already stores for the namespace is not sent at all (the header names its
sha256 and the server reuses it). Downloads of a whole artifact are checked against
its sha256; a path target only appears once the download is complete and correct.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import IO, TYPE_CHECKING, Any

import grpc

from strata.artifacts import (
    CHUNK_SIZE,
    Artifact,
    Prepared,
    Progress,
    Sink,
    Source,
    Target,
    open_source,
    prepare,
    request_messages,
)
from strata.errors import DataLoss, from_rpc_error
from strata.v1 import artifacts_pb2

if TYPE_CHECKING:
    from strata.aio import AsyncClient
    from strata.client import Client

BLOB_NOT_FOUND = "BLOB_NOT_FOUND"


def _header_args(
    owner: str,
    kind: str,
    name: str | None,
    content_type: str | None,
    labels: Mapping[str, str] | None,
    request_id: str | None,
    namespace: str,
) -> dict[str, Any]:
    return {
        "owner": owner,
        "kind": kind,
        "name": name,
        "content_type": content_type,
        "labels": labels,
        "request_id": request_id,
        "namespace": namespace,
    }


def _range_total(artifact: Artifact, offset: int, limit: int) -> int:
    end = artifact.size if limit == 0 else min(artifact.size, offset + limit)
    return max(0, end - offset)


class _Download:
    """One download's bookkeeping: the sink, hash, count and progress."""

    def __init__(self, target: Target, offset: int, limit: int, progress: Progress | None):
        self.sink = Sink(target)
        self.whole = offset == 0 and limit == 0
        self.offset, self.limit = offset, limit
        self.progress = progress
        self.hasher = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.artifact: Artifact | None = None

    def take(self, message: artifacts_pb2.DownloadArtifactResponse) -> bytes | None:
        """Record the artifact message; return a chunk's bytes to write."""
        if message.WhichOneof("part") == "artifact":
            self.artifact = Artifact.from_proto(message.artifact)
            self.total = _range_total(self.artifact, self.offset, self.limit)
            return None
        return message.chunk

    def wrote(self, data: bytes) -> None:
        """Account for bytes written."""
        if self.whole:
            self.hasher.update(data)
        self.received += len(data)
        if self.progress is not None:
            self.progress(self.received, self.total)

    def result(self) -> Artifact:
        """The artifact, after checking what arrived."""
        if self.artifact is None:
            raise DataLoss("the download stream ended before the artifact's metadata")
        if self.received != self.total or (
            self.whole and self.hasher.hexdigest() != self.artifact.sha256
        ):
            raise DataLoss(
                f"the downloaded bytes of artifact {self.artifact.id} do not match its "
                f"sha256 and size ({self.received} of {self.total} bytes)"
            )
        return self.artifact


def upload(
    client: Client,
    source: Source,
    *,
    owner: str,
    kind: str,
    name: str | None,
    content_type: str | None,
    labels: Mapping[str, str] | None,
    request_id: str | None,
    namespace: str | None,
    progress: Progress | None,
) -> Artifact:
    """`Client.upload`."""
    ns = namespace or client.config.namespace
    file, opened = open_source(source)
    try:
        prepared = prepare(
            file, source, **_header_args(owner, kind, name, content_type, labels, request_id, ns)
        )
        stub: Any = client._stubs["artifacts"]
        if prepared.sha256 is not None and not client.find_missing_blobs(
            [prepared.sha256], namespace=ns
        ):
            try:
                return Artifact.from_proto(
                    stub.UploadArtifact(
                        request_messages(prepared.header, None, prepared.size, progress),
                        metadata=client._metadata,
                    )
                )
            except grpc.RpcError as err:  # removed since FindMissingBlobs: send the bytes
                error = from_rpc_error(err)
                if error.reason != BLOB_NOT_FOUND:
                    raise error from err
        try:
            return Artifact.from_proto(
                stub.UploadArtifact(
                    request_messages(prepared.header, file, prepared.size, progress),
                    metadata=client._metadata,
                )
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
    finally:
        if opened:
            file.close()


def download(
    client: Client,
    id: str,
    target: Target,
    *,
    offset: int,
    limit: int,
    namespace: str | None,
    progress: Progress | None,
) -> Artifact:
    """`Client.download`."""
    stub: Any = client._stubs["artifacts"]
    request = artifacts_pb2.DownloadArtifactRequest(
        namespace=namespace or client.config.namespace, id=id, offset=offset, limit=limit
    )
    state = _Download(target, offset, limit, progress)
    try:
        try:
            for message in stub.DownloadArtifact(request, metadata=client._metadata):
                data = state.take(message)
                if data is not None:
                    state.sink.file.write(data)
                    state.wrote(data)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        artifact = state.result()
        state.sink.finish()
        return artifact
    except BaseException:
        state.sink.abort()
        raise


async def _read_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    while piece := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield piece


async def _async_messages(
    prepared: Prepared, file: IO[bytes] | None, progress: Progress | None
) -> AsyncIterator[artifacts_pb2.UploadArtifactRequest]:
    yield artifacts_pb2.UploadArtifactRequest(header=prepared.header)
    if file is None:
        if progress is not None:
            progress(prepared.size or 0, prepared.size)
        return
    sent = 0
    async for piece in _read_chunks(file):
        yield artifacts_pb2.UploadArtifactRequest(chunk=piece)
        sent += len(piece)
        if progress is not None:
            progress(sent, prepared.size)


async def upload_async(
    client: AsyncClient,
    source: Source,
    *,
    owner: str,
    kind: str,
    name: str | None,
    content_type: str | None,
    labels: Mapping[str, str] | None,
    request_id: str | None,
    namespace: str | None,
    progress: Progress | None,
) -> Artifact:
    """`AsyncClient.upload`: file reads and hashing run in worker threads."""
    ns = namespace or client.config.namespace
    file, opened = await asyncio.to_thread(open_source, source)
    try:
        prepared = await asyncio.to_thread(
            lambda: prepare(
                file,
                source,
                **_header_args(owner, kind, name, content_type, labels, request_id, ns),
            )
        )
        stub: Any = client._stubs["artifacts"]
        if prepared.sha256 is not None and not await client.find_missing_blobs(
            [prepared.sha256], namespace=ns
        ):
            try:
                return Artifact.from_proto(
                    await stub.UploadArtifact(
                        _async_messages(prepared, None, progress), metadata=client._metadata
                    )
                )
            except grpc.RpcError as err:
                error = from_rpc_error(err)
                if error.reason != BLOB_NOT_FOUND:
                    raise error from err
        try:
            return Artifact.from_proto(
                await stub.UploadArtifact(
                    _async_messages(prepared, file, progress), metadata=client._metadata
                )
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
    finally:
        if opened:
            await asyncio.to_thread(file.close)


async def download_async(
    client: AsyncClient,
    id: str,
    target: Target,
    *,
    offset: int,
    limit: int,
    namespace: str | None,
    progress: Progress | None,
) -> Artifact:
    """`AsyncClient.download`: file writes run in worker threads."""
    stub: Any = client._stubs["artifacts"]
    request = artifacts_pb2.DownloadArtifactRequest(
        namespace=namespace or client.config.namespace, id=id, offset=offset, limit=limit
    )
    state = await asyncio.to_thread(_Download, target, offset, limit, progress)
    try:
        try:
            async for message in stub.DownloadArtifact(request, metadata=client._metadata):
                data = state.take(message)
                if data is not None:
                    await asyncio.to_thread(state.sink.file.write, data)
                    state.wrote(data)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        artifact = state.result()
        await asyncio.to_thread(state.sink.finish)
        return artifact
    except BaseException:
        await asyncio.to_thread(state.sink.abort)
        raise
