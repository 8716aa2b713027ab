"""The access contract as the issue states it, written independently of the
server's table (api/method_rules.py ROLES), and every method of every service the server
registers, found from the generated descriptors (so a new RPC is in every test
generated from them the moment it is added)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import strata.v1

READS = {
    "strata.v1.RecordService": {
        "GetRecord",
        "BatchGetRecords",
        "ListRecords",
        "CountRecords",
        "SearchRecords",
        "WatchRecords",
    },
    "strata.v1.QueueService": {"GetJob", "ListJobs", "GetQueueStats", "ListQueues"},
    "strata.v1.TranscriptService": {
        "GetTranscript",
        "ListTranscripts",
        "ReadTranscript",
        "SearchTranscripts",
    },
    "strata.v1.ArtifactService": {
        "GetArtifact",
        "ListArtifacts",
        "DownloadArtifact",
        "FindMissingBlobs",
        "GetArtifactUrl",
    },
    "strata.v1.CacheService": {"Get"},
    "strata.v1.SearchService": {"Search"},
    "grpc.reflection.v1alpha.ServerReflection": {"ServerReflectionInfo"},
}
"""reader: every read, plus reflection."""

ADMIN_SERVICES = {"strata.v1.AdminService"}
ADMIN_METHODS = {"strata.v1.QueueService": {"PauseQueue", "ResumeQueue"}}
"""admin: AdminService, and pausing and resuming queues; writer: everything else."""

OPEN = {"grpc.health.v1.Health"}
"""Served without credentials."""

UNSCOPED = {
    "/strata.v1.AdminService/GetServerInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}
"""Methods that name no namespace: the role alone decides."""

EVERY_NAMESPACE = {
    "/strata.v1.AdminService/CreateToken",
    "/strata.v1.AdminService/ListTokens",
    "/strata.v1.AdminService/RevokeToken",
    "/strata.v1.AdminService/GetCleanupStatus",
}
"""Token management, and the cleanup status (it covers every namespace), need an
admin token for "*"."""


def path_of(method: MethodDescriptor) -> str:
    """`/package.Service/Method`."""
    return f"/{method.containing_service.full_name}/{method.name}"


def strata_services() -> Iterator[ServiceDescriptor]:
    """Every service of every generated strata.v1 module."""
    for module in pkgutil.iter_modules(strata.v1.__path__):
        if module.name.endswith("_pb2"):
            generated = importlib.import_module(f"strata.v1.{module.name}")
            yield from generated.DESCRIPTOR.services_by_name.values()


def served_services() -> list[ServiceDescriptor]:
    """Every service a server registers: Strata's, reflection and health."""
    return [
        *strata_services(),
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
    ]


def every_method() -> list[MethodDescriptor]:
    """Every method of every served service."""
    return [method for service in served_services() for method in service.methods]


def needed_role(method: MethodDescriptor) -> str | None:
    """The role the contract gives a method (None: open to anyone)."""
    service = method.containing_service.full_name
    if service in OPEN:
        return None
    if service in ADMIN_SERVICES or method.name in ADMIN_METHODS.get(service, set()):
        return "admin"
    if method.name in READS.get(service, set()):
        return "reader"
    return "writer"
