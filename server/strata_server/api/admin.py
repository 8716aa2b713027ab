"""AdminService: what operators ask of a running server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from strata.v1 import admin_pb2, admin_pb2_grpc
from strata_server import __version__
from strata_server.api.convert import set_timestamp, to_datetime
from strata_server.api.errors import unary
from strata_server.core import errors, models, validation
from strata_server.core.paging import decode_token, encode_token, page_size, query_digest
from strata_server.storage.ports import Database

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class Backends:
    """Names of the backends this process was started with."""

    cache: str
    blobs: str


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    """Server information for operators and clients."""

    def __init__(self, database: Database, backends: Backends, start_time: datetime) -> None:
        self._database = database
        self._backends = backends
        self._start_time = start_time

    @unary
    async def GetServerInfo(
        self, request: admin_pb2.GetServerInfoRequest, context: Context
    ) -> admin_pb2.GetServerInfoResponse:
        facts = await self._database.facts()
        response = admin_pb2.GetServerInfoResponse(
            version=__version__,
            database_backend=facts.backend,
            cache_backend=self._backends.cache,
            blob_backend=self._backends.blobs,
            schema_version=facts.schema_version,
            capabilities=list(facts.capabilities),
            task_count=len(asyncio.all_tasks()),
        )
        response.start_time.FromDatetime(self._start_time)
        return response

    @unary
    async def ListAuditEntries(
        self, request: admin_pb2.ListAuditEntriesRequest, context: Context
    ) -> admin_pb2.ListAuditEntriesResponse:
        namespace = validation.namespace(request.namespace)
        start = to_datetime(request.start_time, request.HasField("start_time"), "start_time")
        end = to_datetime(request.end_time, request.HasField("end_time"), "end_time")
        if start is not None and end is not None and start > end:
            raise errors.InvalidArgument.field("start_time", "is after end_time")
        filters = {
            name: getattr(request, name) or None
            for name in ("entity", "entity_id", "actor", "action")
        }
        for name, value in filters.items():
            if value is not None and (len(value) > MAX_FILTER_CHARS or not value.isprintable()):
                raise errors.InvalidArgument.field(
                    name, f"must be at most {MAX_FILTER_CHARS} printable characters"
                )
        digest = query_digest(
            "audit",
            namespace,
            *(value or "" for value in filters.values()),
            str(start),
            str(end),
        )
        before = None
        if request.page_token:
            key, _ = decode_token(request.page_token, digest)
            if key is None or len(key) != 1 or type(key[0]) is not int:
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
            before = key[0]
        page = await self._database.list_audit(
            namespace,
            models.AuditQuery(
                **filters,
                start_time=start,
                end_time=end,
                limit=page_size(request.page_size),
                before_seq=before,
            ),
        )
        return admin_pb2.ListAuditEntriesResponse(
            entries=[_audit_to_proto(entry) for entry in page.items],
            next_page_token=encode_token(digest, page.last_key) if page.last_key else "",
        )


MAX_FILTER_CHARS = 512


def _audit_to_proto(entry: models.LoggedAudit) -> admin_pb2.AuditEntry:
    message = admin_pb2.AuditEntry(
        seq=entry.seq,
        actor=entry.actor,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        version=entry.version,
        changed_fields=list(entry.changed_fields),
        request_id=entry.request_id or "",
    )
    set_timestamp(message.time, entry.time)
    return message
