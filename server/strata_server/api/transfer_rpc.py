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
from strata_server.api.admin_messages import progress_to_proto, with_progress
from strata_server.api.convert import actor
from strata_server.api.stream_parts import stream_parts
from strata_server.core import errors, validation
from strata_server.core.models import Progress
from strata_server.core.transfer_format import ConflictPolicy
from strata_server.core.values import frozen
from strata_server.services.transfer_export import ExportSummary, NamespaceExport
from strata_server.services.transfer_import import ImportHeader, ImportOutcome, NamespaceImport

Context = grpc.aio.ServicerContext[Any, Any]
MAX_OWNER = 256

_POLICIES = {
    admin_pb2.CONFLICT_POLICY_UNSPECIFIED: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_FAIL: ConflictPolicy.FAIL,
    admin_pb2.CONFLICT_POLICY_SKIP: ConflictPolicy.SKIP,
    admin_pb2.CONFLICT_POLICY_OVERWRITE: ConflictPolicy.OVERWRITE,
}


@frozen
class TransferRpc:
    """The transfer calls of AdminService."""

    exports: NamespaceExport
    imports: NamespaceImport

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
        async for event in self.exports.run(namespace, owner or None):
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
        parts = stream_parts(aiter(requests), _import_header)
        events = self.imports.run(parts, actor=actor(context))
        response = admin_pb2.ImportNamespaceResponse
        async for message in with_progress(events, response, "result", _result):
            yield message


def _import_header(sent: admin_pb2.ImportHeader) -> ImportHeader:
    return ImportHeader(sent.namespace, _POLICIES.get(sent.on_conflict), sent.size)


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
