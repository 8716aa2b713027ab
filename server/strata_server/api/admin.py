"""AdminService: what operators ask of a running server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from strata.v1 import admin_pb2, admin_pb2_grpc
from strata_server import __version__
from strata_server.api.errors import unary
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
