"""Who may call what (`--auth token`): the server's one interceptor with checks.

`AuthInterceptor` is api/decoding.py's interceptor (every request decoded where a
bad one is INVALID_ARGUMENT) that also wraps each method's behaviour, so that
inside it, where the ServicerContext and the decoded request are at hand, it
1. authenticates the caller into a Principal: a client certificate's principal
   (mTLS, when `authenticate_certificate` names one), else the token of the
   `authorization: Bearer <token>` metadata (UNAUTHENTICATED when missing,
   malformed, unknown, revoked or expired);
2. checks the method's role in `method_rules.ROLES` (PERMISSION_DENIED, ErrorInfo
   reason ROLE_REQUIRED with metadata role=<needed>);
3. checks the namespace the request names (`namespace`, empty meaning "default";
   `all_namespaces` meaning "*"; for a client stream, the first message's header)
   against the principal's namespaces (PERMISSION_DENIED, NAMESPACE_NOT_ALLOWED);
4. takes one request from the principal's rate (RESOURCE_EXHAUSTED with RetryInfo);
5. runs the method with the principal bound (`core.access_rules`), so the audit
   actor is the principal's name (api/convert.actor).

It is one interceptor, not a second one after decoding's, because each interceptor
is a stage of grpc.aio's per-call pipeline of its own (api/wrapping_interceptor.py):
under token auth a call then runs the same stages as under `--auth none`.

Under token auth without client certificates, steps 1 and 2 run earlier, while grpc
looks the handler up (`identifier`): grpc has already gathered the call's metadata
there, where `context.invocation_metadata()` would build that tuple again. The
outcome (a principal, or the error to refuse with) waits in a context variable for
the method's behaviour, which runs in the same per-call task; a behaviour that finds
none there (a certificate may name the caller, or no outcome was recorded)
authenticates the caller itself, so nothing is ever allowed by default. A unary call
whose namespace is covered and whose principal has no rate then goes from decoding
straight to the servicer (`decoding.Route`), without a coroutine of the checks', a
context manager or a copy of the metadata: with these every authenticated call paid
several times what its checks cost.

Which role and namespace each method needs is api/method_rules.py's table; this
module only applies it, to every call but health's.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import grpc
from google.protobuf.message import Message

from strata_server.api.decoding import Behaviour, DecodingInterceptor, Route, decoded
from strata_server.api.method_rules import FAIL_CLOSED, OPEN_SERVICES, Rule, rules
from strata_server.api.status_codes import refuse
from strata_server.api.wrapping_interceptor import Handler, Identify, Metadata
from strata_server.core import access_rules as access
from strata_server.core.access_rules import ANONYMOUS, Principal, Role
from strata_server.core.errors import PermissionDenied, RateLimited, StrataError, Unauthenticated
from strata_server.storage.ports import RateLimiter

Context = grpc.aio.ServicerContext[Any, Any]

_IDENTIFIED: contextvars.ContextVar[Principal | StrataError | None] = contextvars.ContextVar(
    "strata_identified", default=None
)
"""Who the call of this task is, as its `identifier` found (or why it is refused);
None when it did not look (module docstring)."""


def bearer(metadata: Metadata | None) -> str:
    """The token of the call's `authorization: Bearer <token>` metadata;
    Unauthenticated when there is none or it is not a bearer token."""
    for key, value in metadata or ():
        if key == "authorization":
            # What every client sends, taken as it is; anything else is parsed below.
            if isinstance(value, str) and value.startswith("Bearer "):
                token = value[7:]
                if token and not token[0].isspace() and not token[-1].isspace():
                    return token
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    "the authorization metadata is malformed: send `Bearer <token>`"
                )
            return token.strip()
    raise Unauthenticated("this server needs a token: send `authorization: Bearer <token>`")


def _judged(principal: Principal, role: Role) -> Principal | StrataError:
    """Step 2 for an identified caller: the principal, or the refusal of its role."""
    return principal if principal.may(role) else PermissionDenied.role_required(role.label)


class AuthInterceptor(DecodingInterceptor):
    """The server's one interceptor (api/decoding.py) with every call but health's
    authenticated and authorized (module docstring)."""

    def __init__(
        self,
        authenticate_token: Callable[[str], Awaitable[Principal]] | None,
        *,
        authenticate_certificate: Callable[[Context], Principal | None] | None = None,
        limiter: RateLimiter | None = None,
        method_rules: Mapping[str, Rule] | None = None,
        recall_token: Callable[[str], Principal | None] | None = None,
    ) -> None:
        """`recall_token` answers at once, without awaiting, for a secret
        `authenticate_token` accepted lately and still valid (else None)."""
        super().__init__()
        self._authenticate_token = authenticate_token
        self._recall_token = recall_token
        self._authenticate_certificate = authenticate_certificate
        self._limiter = limiter
        self._rules = dict(rules() if method_rules is None else method_rules)
        # Tokens alone name callers: they are identified from the handler lookup's
        # metadata (module docstring).
        self._early = authenticate_token is not None and authenticate_certificate is None

    def _rule(self, path: str) -> Rule | None:
        """What a call of `path` needs (None: anyone may call it)."""
        if path.strip("/").partition("/")[0] in OPEN_SERVICES:
            return None
        return self._rules.get(path, FAIL_CLOSED)

    def identifier(self, method: str) -> Identify | None:
        """Under token auth alone, steps 1 and 2 for each call of a guarded method,
        from the metadata grpc gathered for the handler lookup (module docstring)."""
        rule = self._rule(method)
        if not self._early or rule is None:
            return None
        role, recall = rule.role, self._recall_token

        def identify(metadata: Metadata) -> Awaitable[None] | None:
            try:
                secret = bearer(metadata)
            except StrataError as error:
                _IDENTIFIED.set(error)
                return None
            principal = recall(secret) if recall is not None else None
            if principal is None:  # not accepted lately: ask, and say why not
                return self._identify_early(rule, secret)
            _IDENTIFIED.set(_judged(principal, role))
            return None

        return identify

    async def _identify_early(self, rule: Rule, secret: str) -> None:
        """Steps 1 and 2 for a secret not recalled: the principal, or the error the
        behaviour refuses the call with (nothing: the behaviour tries again itself)."""
        assert self._authenticate_token is not None  # self._early
        try:
            principal = await self._authenticate_token(secret)
        except StrataError as error:
            _IDENTIFIED.set(error)
            return
        except Exception:  # raised again where the behaviour authenticates
            return
        _IDENTIFIED.set(_judged(principal, rule.role))

    def wrap(self, path: str, handler: Handler) -> Handler:
        rule = self._rule(path)
        if rule is None:
            return decoded(handler, path)
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
            unchecked = cast(Any, handler.unary_unary)
            inner = self._unary_unary(rule, label, unchecked)
            checked: Handler = grpc.unary_unary_rpc_method_handler(
                inner,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
            return decoded(checked, path, self._route(rule, unchecked, inner))
        wrapped: Handler = make(
            inner,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return decoded(wrapped, path)

    def _route(self, rule: Rule, unchecked: Behaviour, checked: Behaviour) -> Route:
        """A unary call's way past its checks' coroutine: straight to the servicer
        when the caller was identified and steps 3 and 4 pass at once, its namespace
        being the principal's and no rate applying to it (the call's task ends with
        the call, so the principal is assumed rather than bound); else through
        `checked`, which decides and says why."""
        scope = rule.scope
        limits = self._limiter.limits if self._limiter is not None else None

        def route(request: Any) -> Behaviour:
            identified = _IDENTIFIED.get()
            if (
                type(identified) is Principal
                and (scope is None or identified.covers(scope(request)))
                and (limits is None or not limits(identified))
            ):
                access.assume(identified)
                return unchecked
            return checked

        return route

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

    async def _caller(self, rule: Rule, context: Context) -> Principal:
        """Steps 1 and 2 as `identifier`'s step found them, else done now."""
        identified = _IDENTIFIED.get()
        if isinstance(identified, StrataError):
            raise identified
        if identified is not None:
            return identified
        return await self._identify(rule, context)

    async def _admit(self, rule: Rule, label: str, context: Context, request: Any) -> Principal:
        started = time.perf_counter()
        try:
            principal = await self._caller(rule, context)
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
            principal = await self._caller(rule, context)
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
