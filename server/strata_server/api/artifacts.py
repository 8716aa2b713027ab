"""ArtifactService: validates requests, drives the artifact flows and ports, and back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import empty_pb2

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from strata_server.api.convert import actor, fingerprint, set_timestamp
from strata_server.api.errors import streaming, unary
from strata_server.artifacts.upload import Uploads
from strata_server.core import artifacts, errors, validation
from strata_server.core.idle import idle_limited
from strata_server.core.paging import PageTokens, page_size, query_digest
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStore

Context = grpc.aio.ServicerContext[Any, Any]
CHUNK_SIZE = 256 << 10
"""Largest chunk a download sends: big enough that per-message costs stay small next
to the copying, small enough that a stream holds little memory (bench/artifacts.py
measures the resulting rate)."""
DEFAULT_URL_EXPIRY = timedelta(hours=1)
MAX_URL_EXPIRY = timedelta(days=7)

_COMPRESSION = {
    artifacts.Compression.NONE: artifacts_pb2.COMPRESSION_NONE,
    artifacts.Compression.ZSTD: artifacts_pb2.COMPRESSION_ZSTD,
}


def artifact_to_proto(artifact: artifacts.Artifact) -> artifacts_pb2.Artifact:
    """A domain artifact as the wire message."""
    message = artifacts_pb2.Artifact(
        namespace=artifact.namespace,
        id=artifact.id,
        owner=artifact.owner,
        kind=artifact.kind,
        name=artifact.name,
        content_type=artifact.content_type,
        sha256=artifact.sha256,
        size=artifact.size,
        stored_size=artifact.stored_size,
        compression=_COMPRESSION[artifact.compression],
        labels=dict(artifact.labels),
    )
    set_timestamp(message.create_time, artifact.create_time)
    return message


async def _chunks(
    requests: AsyncIterator[artifacts_pb2.UploadArtifactRequest],
) -> AsyncIterator[bytes]:
    """The content chunks after the header; a second header is a caller error."""
    async for request in requests:
        part = request.WhichOneof("part")
        if part == "header":
            raise errors.InvalidArgument.field("header", "was sent twice; send it once, first")
        if part is None:
            raise errors.InvalidArgument.field("part", "each message must hold a header or a chunk")
        if request.chunk:
            yield request.chunk


def _header(message: artifacts_pb2.ArtifactHeader) -> artifacts.Header:
    return artifacts.header(
        owner=message.owner,
        kind=message.kind,
        name=message.name,
        content_type=message.content_type,
        labels=dict(message.labels),
        sha256=message.sha256,
        size=message.size if message.HasField("size") else None,
    )


class ArtifactService(artifacts_pb2_grpc.ArtifactServiceServicer):
    """gRPC face of the artifact rows (ArtifactStore) and bytes (BlobStore)."""

    def __init__(
        self,
        store: Storage,
        blobs: BlobStore,
        max_bytes: int,
        idle_seconds: float,
        *,
        tokens: PageTokens,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._blobs = blobs
        self._uploads = Uploads(store, blobs, max_bytes)
        self._idle_seconds = idle_seconds

    @unary
    async def UploadArtifact(
        self, request_iterator: AsyncIterator[artifacts_pb2.UploadArtifactRequest], context: Context
    ) -> artifacts_pb2.Artifact:
        requests = idle_limited(
            aiter(request_iterator), self._idle_seconds, "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS"
        )
        first = await anext(requests, None)
        if first is None:
            raise errors.InvalidArgument.field("header", "the stream is empty; send a header first")
        if first.WhichOneof("part") != "header":
            raise errors.InvalidArgument.field(
                "header", "the first message must be the header, not a chunk"
            )
        message = first.header
        namespace = validation.namespace(message.namespace)
        header = _header(message)
        artifact = await self._uploads.upload(
            namespace,
            header,
            _chunks(requests),
            actor=actor(context.invocation_metadata()),
            request_id=validation.request_id(message.request_id),
            header_fingerprint=fingerprint(message),
            cancelled=context.cancelled,
        )
        return artifact_to_proto(artifact)

    @streaming
    async def DownloadArtifact(
        self, request: artifacts_pb2.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifacts_pb2.DownloadArtifactResponse]:
        namespace = validation.namespace(request.namespace)
        id = validation.entity_id(request.id)
        if request.offset < 0:
            raise errors.InvalidArgument.field("offset", "must not be negative")
        if request.limit < 0:
            raise errors.InvalidArgument.field("limit", "must not be negative")
        artifact = await self._store.artifacts.get_artifact(namespace, id)
        start, end = artifacts.byte_range(artifact.size, request.offset, request.limit)
        pieces = await self._blobs.open(artifact.blob, start, end)
        try:
            yield artifacts_pb2.DownloadArtifactResponse(artifact=artifact_to_proto(artifact))
            async for piece in pieces:
                for at in range(0, len(piece), CHUNK_SIZE):
                    yield artifacts_pb2.DownloadArtifactResponse(chunk=piece[at : at + CHUNK_SIZE])
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]

    @unary
    async def GetArtifact(
        self, request: artifacts_pb2.GetArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        namespace = validation.namespace(request.namespace)
        artifact = await self._store.artifacts.get_artifact(
            namespace, validation.entity_id(request.id)
        )
        return artifact_to_proto(artifact)

    @unary
    async def ListArtifacts(
        self, request: artifacts_pb2.ListArtifactsRequest, context: Context
    ) -> artifacts_pb2.ListArtifactsResponse:
        namespace = validation.namespace(request.namespace)
        owner = request.owner or None
        kind = request.kind or None
        if owner is not None and (len(owner) > artifacts.MAX_OWNER or not owner.isprintable()):
            raise errors.InvalidArgument.field("owner", "must be at most 256 printable characters")
        if kind is not None and not artifacts.KIND_RE.fullmatch(kind):
            raise errors.InvalidArgument.field(
                "kind", "must be a letter followed by up to 63 letters, digits, '_' or '-'"
            )
        limit = page_size(request.page_size)
        digest = query_digest("artifacts", namespace, owner or "", kind or "")
        after = None
        if request.page_token:
            key, _ = self._tokens.decode(request.page_token, digest)
            if key is None or len(key) != 1 or not isinstance(key[0], str):
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
            after = key[0]
        page = await self._store.artifacts.list_artifacts(namespace, owner, kind, limit, after)
        return artifacts_pb2.ListArtifactsResponse(
            artifacts=[artifact_to_proto(item) for item in page.items],
            next_page_token=self._tokens.encode(digest, tuple(page.last_key))
            if page.last_key is not None
            else "",
        )

    @unary
    async def DeleteArtifact(
        self, request: artifacts_pb2.DeleteArtifactRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace = validation.namespace(request.namespace)
        await self._store.artifacts.delete_artifact(
            namespace,
            validation.entity_id(request.id),
            actor=actor(context.invocation_metadata()),
        )
        return empty_pb2.Empty()

    @unary
    async def FindMissingBlobs(
        self, request: artifacts_pb2.FindMissingBlobsRequest, context: Context
    ) -> artifacts_pb2.FindMissingBlobsResponse:
        namespace = validation.namespace(request.namespace)
        if len(request.sha256s) > artifacts.MAX_FIND:
            raise errors.InvalidArgument.field(
                "sha256s", f"must hold at most {artifacts.MAX_FIND} SHA-256s"
            )
        wanted = [
            artifacts.sha256_hex(value, f"sha256s[{index}]")
            for index, value in enumerate(request.sha256s)
        ]
        named = await self._store.artifacts.namespace_blobs(namespace, wanted) if wanted else {}
        stored = {sha for sha in named if await self._blobs.stat(sha) is not None}
        return artifacts_pb2.FindMissingBlobsResponse(
            missing_sha256s=[sha for sha in wanted if sha not in stored]
        )

    @unary
    async def GetArtifactUrl(
        self, request: artifacts_pb2.GetArtifactUrlRequest, context: Context
    ) -> artifacts_pb2.GetArtifactUrlResponse:
        namespace = validation.namespace(request.namespace)
        expiry = DEFAULT_URL_EXPIRY
        if request.HasField("expiry"):
            expiry = request.expiry.ToTimedelta()
            if not timedelta(seconds=1) <= expiry <= MAX_URL_EXPIRY:
                raise errors.InvalidArgument.field("expiry", "must be between 1 s and 7 days")
        artifact = await self._store.artifacts.get_artifact(
            namespace, validation.entity_id(request.id)
        )
        url = await self._blobs.presign(artifact.blob, expiry, artifact.content_type, artifact.name)
        response = artifacts_pb2.GetArtifactUrlResponse(
            url=url, compression=_COMPRESSION[artifact.compression]
        )
        set_timestamp(response.expire_time, datetime.now(UTC) + expiry)
        return response
