"""ArtifactService: proto <-> services/artifacts_service.py, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import KW_ONLY
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import empty_pb2

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from strata_server.api.convert import (
    actor,
    fingerprint,
    message_from,
    parent_from_proto,
    parent_key,
    parent_to_proto,
    set_timestamp,
    target,
)
from strata_server.api.page_tokens import paging
from strata_server.api.status_codes import rpcs
from strata_server.api.stream_parts import stream_parts
from strata_server.core import artifact_rules as artifacts
from strata_server.core import errors, validation
from strata_server.core.paging import PageTokens
from strata_server.core.values import frozen
from strata_server.services.artifacts_service import Artifacts, UploadHeader

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_URL_EXPIRY = timedelta(hours=1)
MAX_URL_EXPIRY = timedelta(days=7)

_COMPRESSION = {
    artifacts.Compression.NONE: artifacts_pb2.COMPRESSION_NONE,
    artifacts.Compression.ZSTD: artifacts_pb2.COMPRESSION_ZSTD,
}


_TIERS = {
    artifacts.ArtifactTier.HOT: artifacts_pb2.ARTIFACT_TIER_HOT,
    artifacts.ArtifactTier.ARCHIVED: artifacts_pb2.ARTIFACT_TIER_ARCHIVED,
}


def artifact_to_proto(artifact: artifacts.Artifact) -> artifacts_pb2.Artifact:
    """A domain artifact as the wire message."""
    return message_from(
        artifacts_pb2.Artifact,
        artifact,
        compression=_COMPRESSION[artifact.compression],
        parent=parent_to_proto(artifact.parent),
        tier=_TIERS[artifact.tier],
    )


def _upload_header(sent: artifacts_pb2.ArtifactHeader) -> UploadHeader:
    header = artifacts.Header(
        owner=sent.owner,
        kind=sent.kind,
        name=sent.name,
        content_type=sent.content_type,
        labels=dict(sent.labels),
        sha256=sent.sha256,
        size=sent.size if sent.HasField("size") else None,
        parent=parent_from_proto(sent.parent, "header.parent"),
    )
    return UploadHeader(sent.namespace, header, sent.request_id, fingerprint(sent))


def _list_filters(request: artifacts_pb2.ListArtifactsRequest) -> tuple[str | None, str | None]:
    owner = request.owner or None
    kind = request.kind or None
    if owner is not None and (len(owner) > artifacts.MAX_OWNER or not owner.isprintable()):
        raise errors.InvalidArgument.field("owner", "must be at most 256 printable characters")
    if kind is not None and not artifacts.KIND_RE.fullmatch(kind):
        raise errors.InvalidArgument.field(
            "kind", "must be a letter followed by up to 63 letters, digits, '_' or '-'"
        )
    return owner, kind


def _url_expiry(request: artifacts_pb2.GetArtifactUrlRequest) -> timedelta:
    if not request.HasField("expiry"):
        return DEFAULT_URL_EXPIRY
    expiry = request.expiry.ToTimedelta()
    if not timedelta(seconds=1) <= expiry <= MAX_URL_EXPIRY:
        raise errors.InvalidArgument.field("expiry", "must be between 1 s and 7 days")
    return expiry


@rpcs(artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"])
@frozen
class ArtifactService(artifacts_pb2_grpc.ArtifactServiceServicer):
    """gRPC face of the artifact use cases."""

    artifacts: Artifacts
    _: KW_ONLY
    tokens: PageTokens

    async def UploadArtifact(
        self, request_iterator: AsyncIterator[artifacts_pb2.UploadArtifactRequest], context: Context
    ) -> artifacts_pb2.Artifact:
        artifact = await self.artifacts.upload(
            stream_parts(aiter(request_iterator), _upload_header),
            actor=actor(context),
            cancelled=context.cancelled,
        )
        return artifact_to_proto(artifact)

    async def DownloadArtifact(
        self, request: artifacts_pb2.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[artifacts_pb2.DownloadArtifactResponse]:
        namespace, id = target(request)
        download = self.artifacts.download(namespace, id, request.offset, request.limit)
        async with aclosing(download) as items:
            async for item in items:
                if isinstance(item, bytes):
                    yield artifacts_pb2.DownloadArtifactResponse(chunk=item)
                else:
                    yield artifacts_pb2.DownloadArtifactResponse(artifact=artifact_to_proto(item))

    async def GetArtifact(
        self, request: artifacts_pb2.GetArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        return artifact_to_proto(await self.artifacts.get(*target(request)))

    async def ListArtifacts(
        self, request: artifacts_pb2.ListArtifactsRequest, context: Context
    ) -> artifacts_pb2.ListArtifactsResponse:
        namespace = validation.namespace(request.namespace)
        owner, kind = _list_filters(request)
        parent = parent_from_proto(request.parent)
        filters = (owner or "", kind or "", *parent_key(parent))
        pages = paging(self.tokens, request, "artifacts", namespace, *filters)
        query = artifacts.ArtifactListQuery(pages.limit, owner, kind, pages.after(str), parent)
        page = await self.artifacts.list_artifacts(namespace, query)
        return artifacts_pb2.ListArtifactsResponse(
            artifacts=[artifact_to_proto(item) for item in page.items],
            next_page_token=pages.next_token(page),
        )

    async def DeleteArtifact(
        self, request: artifacts_pb2.DeleteArtifactRequest, context: Context
    ) -> empty_pb2.Empty:
        await self.artifacts.delete(*target(request), actor=actor(context))
        return empty_pb2.Empty()

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
        missing = await self.artifacts.find_missing(namespace, wanted)
        return artifacts_pb2.FindMissingBlobsResponse(missing_sha256s=missing)

    async def GetArtifactUrl(
        self, request: artifacts_pb2.GetArtifactUrlRequest, context: Context
    ) -> artifacts_pb2.GetArtifactUrlResponse:
        namespace = validation.namespace(request.namespace)
        expiry = _url_expiry(request)
        found = await self.artifacts.url(namespace, validation.entity_id(request.id), expiry)
        response = artifacts_pb2.GetArtifactUrlResponse(
            url=found.url, compression=_COMPRESSION[found.artifact.compression]
        )
        set_timestamp(response.expire_time, found.expire_time)
        return response

    async def RestoreArtifact(
        self, request: artifacts_pb2.RestoreArtifactRequest, context: Context
    ) -> artifacts_pb2.Artifact:
        artifact = await self.artifacts.restore(*target(request), actor=actor(context))
        return artifact_to_proto(artifact)
