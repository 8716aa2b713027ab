"""Every RPC the server serves, as its reflection service lists them.

The list comes from the running server, not from this checkout's stubs: a service or
method added to the server is fuzzed without touching the suite, and one the
server forgot to register for reflection shows as missing from `SERVICES_EXPECTED`.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from strata.v1 import (
    admin_pb2,
    artifacts_pb2,
    cache_pb2,
    queue_pb2,
    records_pb2,
    search_pb2,
    transaction_pb2,
    transcripts_pb2,
)
from tests.fuzz.calls import Method

SERVICES_EXPECTED = frozenset(
    {
        "strata.v1.AdminService",
        "strata.v1.ArtifactService",
        "strata.v1.CacheService",
        "strata.v1.QueueService",
        "strata.v1.RecordService",
        "strata.v1.SearchService",
        "strata.v1.TransactionService",
        "strata.v1.TranscriptService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)
"""Services the suite must find at least (it fuzzes whatever else it finds too)."""


_LOCAL = (
    admin_pb2,
    artifacts_pb2,
    cache_pb2,
    queue_pb2,
    records_pb2,
    search_pb2,
    transaction_pb2,
    transcripts_pb2,
    health_pb2,
    reflection_pb2,
)


def local_paths() -> set[str]:
    """The path of every method that this checkout's stubs (and grpcio's health and
    reflection packages) define for a service the server must serve."""
    return {
        f"/{service.full_name}/{method.name}"
        for module in _LOCAL
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def methods(channel: grpc.Channel) -> list[Method]:
    """Every method of every service the server lists, with its request type."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    found: list[Method] = []
    for name in sorted(database.get_services()):
        service = pool.FindServiceByName(name)
        for method in service.methods:
            found.append(
                Method(
                    path=f"/{service.full_name}/{method.name}",
                    input=method.input_type,
                    message_class=message_factory.GetMessageClass(method.input_type),
                    response_class=message_factory.GetMessageClass(method.output_type),
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                )
            )
    return found
