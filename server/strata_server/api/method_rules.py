"""What each RPC needs of its caller: the role table and how each method's request
names its namespace, checked once when the server starts (`rules`).

The auth interceptor (api/auth.py) applies these rules to every call; they are
kept apart so that the table can be read, reviewed and tested without the
interceptor's call plumbing. grpc.health.v1.Health is served to anyone. `ROLES`
names every method of every service the server registers; a method missing from
it is refused to all but admins of every namespace, and tests/security walks the
service descriptors so a new RPC without an entry fails there first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection, reflection_pb2

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
from strata_server.core.access_rules import ALL_NAMESPACES, Role
from strata_server.core.validation import DEFAULT_NAMESPACE
from strata_server.core.values import frozen

Scope = Callable[[Any], str]
"""The namespace a request names ("*" for every namespace)."""

R, W, A = Role.READER, Role.WRITER, Role.ADMIN

ROLES: Mapping[str, Mapping[str, Role]] = {
    "strata.v1.RecordService": {
        "CreateRecord": W,
        "GetRecord": R,
        "BatchGetRecords": R,
        "UpdateRecord": W,
        "DeleteRecord": W,
        "ListRecords": R,
        "CountRecords": R,
        "SearchRecords": R,
        "WatchRecords": R,
    },
    "strata.v1.TransactionService": {"Commit": W},
    "strata.v1.QueueService": {
        "Enqueue": W,
        "BatchEnqueue": W,
        "LeaseJobs": W,
        "SubscribeJobs": W,
        "AckJob": W,
        "AckJobs": W,
        "FailJob": W,
        "ExtendLease": W,
        "CancelJob": W,
        "GetJob": R,
        "ListJobs": R,
        "RetryJob": W,
        "PauseQueue": A,
        "ResumeQueue": A,
        "GetQueueStats": R,
        "ListQueues": R,
    },
    "strata.v1.TranscriptService": {
        "CreateTranscript": W,
        "GetTranscript": R,
        "ListTranscripts": R,
        "AppendEntries": W,
        "ReadTranscript": R,
        "SealTranscript": W,
        "RestoreTranscript": W,
        "DeleteTranscript": W,
        "SearchTranscripts": R,
    },
    "strata.v1.ArtifactService": {
        "UploadArtifact": W,
        "DownloadArtifact": R,
        "GetArtifact": R,
        "ListArtifacts": R,
        "DeleteArtifact": W,
        "FindMissingBlobs": R,
        "GetArtifactUrl": R,
        "RestoreArtifact": W,
    },
    "strata.v1.CacheService": {"Get": R, "Set": W, "Delete": W},
    "strata.v1.SearchService": {"Search": R},
    "strata.v1.AdminService": {
        "GetServerInfo": A,
        "ListAuditEntries": A,
        "CreateIndex": A,
        "ListIndexes": A,
        "DropIndex": A,
        "SetRetentionPolicy": A,
        "ListRetentionPolicies": A,
        "DeleteRetentionPolicy": A,
        "GetUsage": A,
        "CheckIntegrity": A,
        "RunCleanup": A,
        "ExportNamespace": A,
        "ImportNamespace": A,
        "CreateToken": A,
        "ListTokens": A,
        "RevokeToken": A,
        "SetQuota": A,
        "ListQuotas": A,
        "GetCleanupStatus": A,
        "GetIntegrityStatus": A,
        "ReindexArtifacts": A,
    },
    reflection.SERVICE_NAME: {"ServerReflectionInfo": R},
}
"""The role each method needs: reader for every read, writer for every other data
call, admin for AdminService and for pausing and resuming queues."""

OPEN_SERVICES = frozenset({health.SERVICE_NAME})
"""Served to anyone, without credentials: load balancers probe health."""

EVERY_NAMESPACE = frozenset(
    {
        "/strata.v1.AdminService/CreateToken",
        "/strata.v1.AdminService/ListTokens",
        "/strata.v1.AdminService/RevokeToken",
        "/strata.v1.AdminService/GetCleanupStatus",
    }
)
"""Methods that act on the whole server, so they need a principal for "*"."""

EMPTY_MEANS_EVERY = frozenset(
    {
        "/strata.v1.AdminService/ListQuotas",
        # An import without a namespace goes into the one its archive names, which
        # is not known until the archive is read: only a token for "*" may.
        "/strata.v1.AdminService/ImportNamespace",
    }
)
"""Methods whose empty namespace means every namespace (or any), not "default"."""

UNSCOPED = frozenset(
    {
        "/strata.v1.AdminService/GetServerInfo",
        f"/{reflection.SERVICE_NAME}/ServerReflectionInfo",
    }
)
"""Methods that name no namespace and show none's data: the role alone decides."""

STRATA_SERVICES: tuple[ServiceDescriptor, ...] = (
    records_pb2.DESCRIPTOR.services_by_name["RecordService"],
    transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"],
    queue_pb2.DESCRIPTOR.services_by_name["QueueService"],
    transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"],
    artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"],
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
    search_pb2.DESCRIPTOR.services_by_name["SearchService"],
)
"""The eight Strata services, as their descriptors: listed once, so the server
reflects and reports healthy (app.py) exactly the services this table covers."""

SERVICES = (*STRATA_SERVICES, reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])
"""Every service behind authentication, as its descriptor."""


@frozen
class Rule:
    """What a call of one method needs: `role`, and a principal covering the
    namespace `scope` reads from the request (None: the method names none)."""

    role: Role
    scope: Scope | None


FAIL_CLOSED = Rule(Role.ADMIN, lambda _request: ALL_NAMESPACES)
"""The rule of a method `ROLES` does not name: admins of every namespace only."""


def _every(_request: Any) -> str:
    return ALL_NAMESPACES


def _scope_of(path: str, request_type: Descriptor) -> Scope | None:
    """How to read the namespace a request of `request_type` names; raises
    LookupError for a request type with no recognisable namespace."""
    if path in EVERY_NAMESPACE:
        return _every
    if path in UNSCOPED:
        return None
    fields = request_type.fields_by_name
    empty = ALL_NAMESPACES if path in EMPTY_MEANS_EVERY else DEFAULT_NAMESPACE
    if "namespace" in fields and "all_namespaces" in fields:
        return lambda request: (
            ALL_NAMESPACES if request.all_namespaces else request.namespace or empty
        )
    if "namespace" in fields:
        return lambda request: request.namespace or empty
    header = fields.get("header")
    header_type = header.message_type if header is not None else None
    if header_type is not None and "namespace" in header_type.fields_by_name:
        # A stream whose first message is not a header is refused by the method
        # itself; until then it counts as naming no namespace.
        return lambda request: request.header.namespace or empty
    raise LookupError(f"{path}: its request names no namespace, and UNSCOPED does not list it")


def rules(services: Iterable[ServiceDescriptor] = SERVICES) -> dict[str, Rule]:
    """Each method's rule by its path (`/package.Service/Method`); raises LookupError
    for a method without a role in ROLES or without a way to read its namespace."""
    found: dict[str, Rule] = {}
    for service in services:
        roles = ROLES.get(service.full_name, {})
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            if method.name not in roles:
                raise LookupError(f"{path} has no role in api/method_rules.py ROLES")
            found[path] = Rule(roles[method.name], _scope_of(path, method.input_type))
    return found
