"""ExportNamespace / ImportNamespace: proto <-> services/transfer_export.py and
services/transfer_import.py, nothing else.

AdminService delegates both calls here, so the admin servicer stays a list of calls
and this module holds the transfer messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from strata.v1 import admin_pb2
from strata_server.api.admin_messages import progress_to_proto
from strata_server.api.convert import actor
from strata_server.core import errors, validation
from strata_server.core.archive import ConflictPolicy
from strata_server.core.models import Progress
from strata_server.services.transfer_export import ExportSummary, NamespaceExport
from strata_server.services.transfer_import import (
    ImportHeader,
    ImportOutcome,
    ImportPart,
    NamespaceImport,
)

Context = grpc.aio.ServicerContext[Any, Any]
MAX_OWNER = 256

_POLICIES = {
    admin_pb2.CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_FAIL: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_SKIP: ConflictPolicy.SKIP,
    admin_pb2.CONFLICT_POLICY_OVERWRITE: ConflictPolicy.OVERWRITE,
}


class TransferRpc:
    """The transfer calls of AdminService."""

    def __init__(self, export: NamespaceExport, import_: NamespaceImport) -> None:
        self._export = export
        self._import = import_

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
        async for event in self._export.run(namespace, owner or None):
            if isinstance(event, bytes):
                yield admin_pb2.ExportNamespaceResponse(chunk=event)
            elif isinstance(event, Progress):
                yield admin_pb2.ExportNamespaceResponse(progress=progress_to_proto(event))
            else:
                yield admin_pb2.ExportNamespaceResponse(summary=_summary(event))

    async def import_(
        self, requests: AsyncIterator[admin_pb2.ImportNamespaceRequest], context: Context
    ) -> AsyncIterator[admin_pb2.ImportNamespaceResponse]:
        """ImportNamespace's messages."""
        events = self._import.run(
            _parts(aiter(requests)), actor=actor(context.invocation_metadata())
        )
        async for event in events:
            if isinstance(event, Progress):
                yield admin_pb2.ImportNamespaceResponse(progress=progress_to_proto(event))
            else:
                yield admin_pb2.ImportNamespaceResponse(result=_result(event))


async def _parts(
    requests: AsyncIterator[admin_pb2.ImportNamespaceRequest],
) -> AsyncIterator[ImportPart]:
    """Each message of an import stream as the service takes it (it checks the order)."""
    async for request in requests:
        part = request.WhichOneof("part")
        if part == "chunk":
            yield request.chunk
        elif part == "header":
            header = request.header
            policy = _POLICIES.get(header.on_conflict)
            yield ImportHeader(header.namespace, policy, header.size)
        else:
            yield None


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
