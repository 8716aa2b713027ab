"""ExportNamespace / ImportNamespace: proto <-> the transfer flows, nothing else.

AdminService delegates both calls here, so the admin servicer stays a list of calls
and this module holds the archive's messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from strata.v1 import admin_pb2
from strata_server import __version__
from strata_server.api.convert import actor
from strata_server.core import errors, validation
from strata_server.core.archive import ConflictPolicy
from strata_server.core.idle import idle_limited
from strata_server.core.models import Progress
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStore
from strata_server.transfer.export import ExportSummary, export_namespace
from strata_server.transfer.importer import ImportLimits, ImportOutcome, import_namespace

Context = grpc.aio.ServicerContext[Any, Any]
MAX_OWNER = 256

_POLICIES = {
    admin_pb2.CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_FAIL: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_SKIP: ConflictPolicy.SKIP,
    admin_pb2.CONFLICT_POLICY_OVERWRITE: ConflictPolicy.OVERWRITE,
}


def _progress(progress: Progress) -> admin_pb2.Progress:
    return admin_pb2.Progress(
        phase=progress.phase, done=progress.done, total=progress.total, unit=progress.unit
    )


class NamespaceTransfer:
    """The archive calls of AdminService, over the database and blob ports."""

    def __init__(
        self,
        database: Storage,
        blobs: BlobStore,
        *,
        limits: ImportLimits,
        idle_seconds: float,
        forget: Callable[[str], Awaitable[None]],
    ) -> None:
        self._database = database
        self._blobs = blobs
        self._limits = limits
        self._idle_seconds = idle_seconds
        self._forget = forget

    async def export(
        self, request: admin_pb2.ExportNamespaceRequest, context: Context
    ) -> AsyncIterator[admin_pb2.ExportNamespaceResponse]:
        """ExportNamespace's messages."""
        namespace = validation.namespace(request.namespace)
        owner = request.owner
        if len(owner) > MAX_OWNER or not owner.isprintable():
            raise errors.InvalidArgument.field(
                "owner", f"must be at most {MAX_OWNER} printable characters"
            )
        facts = await self._database.facts()
        source = {"version": __version__, "database": facts.backend, "blobs": self._blobs.kind}
        events = export_namespace(
            self._database.transfer, self._blobs, namespace, owner or None, source=source
        )
        async for event in events:
            if isinstance(event, bytes):
                yield admin_pb2.ExportNamespaceResponse(chunk=event)
            elif isinstance(event, Progress):
                yield admin_pb2.ExportNamespaceResponse(progress=_progress(event))
            else:
                yield admin_pb2.ExportNamespaceResponse(summary=_summary(event))

    async def import_(
        self, requests: AsyncIterator[admin_pb2.ImportNamespaceRequest], context: Context
    ) -> AsyncIterator[admin_pb2.ImportNamespaceResponse]:
        """ImportNamespace's messages."""
        stream = idle_limited(
            aiter(requests), self._idle_seconds, "STRATA_IMPORT_IDLE_TIMEOUT_SECONDS"
        )
        first = await anext(stream, None)
        if first is None or first.WhichOneof("part") != "header":
            raise errors.InvalidArgument.field("header", "the first message must be the header")
        header = first.header
        target = validation.namespace(header.namespace) if header.namespace else None
        policy = _POLICIES.get(header.on_conflict)
        if policy is None:
            raise errors.InvalidArgument.field("header.on_conflict", "is not a ConflictPolicy")
        if header.size < 0:
            raise errors.InvalidArgument.field("header.size", "must not be negative")
        events = import_namespace(
            self._database,
            self._blobs,
            _chunks(stream),
            target=target,
            policy=policy,
            declared_size=header.size,
            limits=self._limits,
            actor=actor(context.invocation_metadata()),
            forget=self._forget,
        )
        async for event in events:
            if isinstance(event, Progress):
                yield admin_pb2.ImportNamespaceResponse(progress=_progress(event))
            else:
                yield admin_pb2.ImportNamespaceResponse(result=_result(event))


async def _chunks(
    requests: AsyncIterator[admin_pb2.ImportNamespaceRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise errors.InvalidArgument.field("header", "was sent twice; send it once, first")
        yield request.chunk


def _summary(summary: ExportSummary) -> admin_pb2.ArchiveSummary:
    return admin_pb2.ArchiveSummary(
        namespace=summary.namespace,
        owner=summary.owner,
        counts=dict(summary.counts),
        archive_bytes=summary.archive_bytes,
        format_version=summary.format_version,
    )


def _result(outcome: ImportOutcome) -> admin_pb2.ImportResult:
    return admin_pb2.ImportResult(
        namespace=outcome.namespace,
        source_namespace=outcome.source_namespace,
        counts=[
            admin_pb2.ImportCount(
                kind=c.kind, imported=c.imported, skipped=c.skipped, overwritten=c.overwritten
            )
            for c in outcome.counts.kinds.values()
        ],
        archive_bytes=outcome.archive_bytes,
        new_blob_bytes=outcome.new_blob_bytes,
    )
