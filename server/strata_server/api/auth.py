"""Who may call what (`--auth token`): one grpc.aio server interceptor.

For each call the interceptor wraps the method's behaviour, so that inside it,
where the ServicerContext and the decoded request are at hand, it
1. authenticates the caller into a Principal: a client certificate's principal
   (mTLS, when `authenticate_certificate` names one), else the token of the
   `authorization: Bearer <token>` metadata (UNAUTHENTICATED when missing,
   malformed, unknown, revoked or expired);
2. checks the method's role in `ROLES` (PERMISSION_DENIED, ErrorInfo reason
   ROLE_REQUIRED with metadata role=<needed>);
3. checks the namespace the request names (`namespace`, empty meaning "default";
   `all_namespaces` meaning "*"; for a client stream, the first message's header)
   against the principal's namespaces (PERMISSION_DENIED, NAMESPACE_NOT_ALLOWED);
4. takes one request from the principal's rate (RESOURCE_EXHAUSTED with RetryInfo);
5. runs the method inside `access.bind(principal)`, so the audit actor is the
   principal's name (api/convert.actor).

grpc.health.v1.Health is served to anyone. `ROLES` names every method of every
service the server registers; a method missing from it is refused to all but
admins of every namespace, and tests/security walks the service descriptors so a
new RPC without an entry fails there first.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection, reflection_pb2

from strata.v1 import (
    admin_pb2,
    artifacts_pb2,
    cache_pb2,
    queue_pb2,
    records_pb2,
    transaction_pb2,
    transcripts_pb2,
)
from strata_server.api.status_codes import refuse
from strata_server.core import access_rules as access
from strata_server.core.access_rules import ALL_NAMESPACES, ANONYMOUS, Principal, Role
from strata_server.core.errors import PermissionDenied, RateLimited, StrataError, Unauthenticated
from strata_server.core.validation import DEFAULT_NAMESPACE
from strata_server.storage.ports import RateLimiter

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
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
    },
    "strata.v1.CacheService": {"Get": R, "Set": W, "Delete": W},
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

SERVICES: tuple[ServiceDescriptor, ...] = (
    records_pb2.DESCRIPTOR.services_by_name["RecordService"],
    transaction_pb2.DESCRIPTOR.services_by_name["TransactionService"],
    queue_pb2.DESCRIPTOR.services_by_name["QueueService"],
    transcripts_pb2.DESCRIPTOR.services_by_name["TranscriptService"],
    artifacts_pb2.DESCRIPTOR.services_by_name["ArtifactService"],
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
)
"""Every service behind authentication, as its descriptor."""


@dataclass(frozen=True, slots=True)
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
                raise LookupError(f"{path} has no role in api/auth.py ROLES")
            found[path] = Rule(roles[method.name], _scope_of(path, method.input_type))
    return found


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The token of the call's `authorization: Bearer <token>` metadata;
    Unauthenticated when there is none or it is not a bearer token."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    "the authorization metadata is malformed: send `Bearer <token>`"
                )
            return token.strip()
    raise Unauthenticated("this server needs a token: send `authorization: Bearer <token>`")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes every call but health's (module docstring)."""

    def __init__(
        self,
        authenticate_token: Callable[[str], Awaitable[Principal]] | None,
        *,
        authenticate_certificate: Callable[[Context], Principal | None] | None = None,
        limiter: RateLimiter | None = None,
        method_rules: Mapping[str, Rule] | None = None,
    ) -> None:
        self._authenticate_token = authenticate_token
        self._authenticate_certificate = authenticate_certificate
        self._limiter = limiter
        self._rules = dict(rules() if method_rules is None else method_rules)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        """The method's handler, wrapped once per method (then reused)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return cast("grpc.RpcMethodHandler[Req, Resp]", known[1])
        wrapped = self._wrap(path, handler)
        self._wrapped[path] = (handler, wrapped)
        return cast("grpc.RpcMethodHandler[Req, Resp]", wrapped)

    def _wrap(self, path: str, handler: Handler) -> Handler:
        service = path.strip("/").partition("/")[0]
        if service in OPEN_SERVICES:
            return handler
        rule = self._rules.get(path, FAIL_CLOSED)
        label = path.rpartition(".")[2]  # "RecordService/GetRecord", as metrics label it
        # The stubs type behaviours as grpc's synchronous ones; under grpc.aio they
        # are coroutine functions and async generator functions.
        inner: Any
        make: Any
        if handler.request_streaming and handler.response_streaming:
            inner = self._stream_stream(rule, label, cast(Any, handler.stream_stream))
            make = grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            inner = self._stream_unary(rule, label, cast(Any, handler.stream_unary))
            make = grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            inner = self._unary_stream(rule, label, cast(Any, handler.unary_stream))
            make = grpc.unary_stream_rpc_method_handler
        else:
            inner = self._unary_unary(rule, label, cast(Any, handler.unary_unary))
            make = grpc.unary_unary_rpc_method_handler
        wrapped: Handler = make(
            inner,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return wrapped

    # --- the checks ------------------------------------------------------------------

    async def _identify(self, rule: Rule, context: Context) -> Principal:
        """Steps 1 and 2: who is calling, and whether their role allows the method."""
        principal = None
        if self._authenticate_certificate is not None:
            principal = self._authenticate_certificate(context)
        if principal is None:
            if self._authenticate_token is None:  # --auth none: anyone may call
                principal = ANONYMOUS
            else:
                principal = await self._authenticate_token(bearer(context.invocation_metadata()))
        if not principal.may(rule.role):
            raise PermissionDenied.role_required(rule.role.label)
        return principal

    async def _authorize(self, rule: Rule, principal: Principal, request: Any) -> Principal:
        """Steps 3 and 4: the namespace the request names, and the principal's rate."""
        if rule.scope is not None and request is not None:
            namespace = rule.scope(request)
            if not principal.covers(namespace):
                raise PermissionDenied.namespace_not_allowed(namespace)
        if self._limiter is not None:
            wait = await self._limiter.acquire(principal)
            if wait is not None:
                raise RateLimited(principal.name, wait)
        return principal

    async def _admit(self, rule: Rule, label: str, context: Context, request: Any) -> Principal:
        started = time.perf_counter()
        try:
            principal = await self._identify(rule, context)
            return await self._authorize(rule, principal, request)
        except StrataError as error:
            await refuse(context, label, error, started)
            raise  # unreachable: refusing aborts the call

    # --- one wrapper per call shape --------------------------------------------------

    def _unary_unary(
        self, rule: Rule, label: str, inner: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def behaviour(request: Any, context: Context) -> Any:
            principal = await self._admit(rule, label, context, request)
            with access.bind(principal):
                return await inner(request, context)

        return behaviour

    def _unary_stream(
        self, rule: Rule, label: str, inner: Callable[[Any, Context], Any]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def behaviour(request: Any, context: Context) -> AsyncIterator[Any]:
            principal = await self._admit(rule, label, context, request)
            with access.bind(principal):
                async for response in _responses(inner(request, context)):
                    yield response

        return behaviour

    def _stream_unary(
        self, rule: Rule, label: str, inner: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def behaviour(requests: AsyncIterator[Any], context: Context) -> Any:
            principal, first = await self._admit_stream(rule, label, requests, context)
            with access.bind(principal):
                return await inner(_chained(first, requests), context)

        return behaviour

    def _stream_stream(
        self, rule: Rule, label: str, inner: Callable[[Any, Context], Any]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def behaviour(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            principal, first = await self._admit_stream(rule, label, requests, context)
            with access.bind(principal):
                async for response in _responses(inner(_chained(first, requests), context)):
                    yield response

        return behaviour

    async def _admit_stream(
        self, rule: Rule, label: str, requests: AsyncIterator[Any], context: Context
    ) -> tuple[Principal, Message | None]:
        """A client stream is authenticated before any of it is read; its namespace
        is read from its first message."""
        started = time.perf_counter()
        try:
            principal = await self._identify(rule, context)
            first = await anext(aiter(requests), None)
            return await self._authorize(rule, principal, first), first
        except StrataError as error:
            await refuse(context, label, error, started)
            raise  # unreachable: refusing aborts the call


async def _chained(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The client stream again, with its first message (already read) in front."""
    if first is None:
        return
    yield first
    async for message in rest:
        yield message


async def _responses(result: Any) -> AsyncIterator[Any]:
    """A streaming behaviour's responses, whether it yields them (an async generator)
    or writes them with context.write and returns (a coroutine)."""
    if inspect.isawaitable(result):
        await result
        return
    async for response in result:
        yield response
