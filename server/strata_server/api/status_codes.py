"""The one place domain errors become gRPC statuses.

Every status carries google.rpc.ErrorInfo (reason, domain, metadata) and, for bad
input, google.rpc.BadRequest field violations. Anything that is not a StrataError is
a bug in Strata: it is logged with its traceback and reported as INTERNAL without
leaking internals to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, NoReturn, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2, message
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from strata_server import metrics
from strata_server.api import admission
from strata_server.core import errors
from strata_server.core.parent_refs import HasChildren

DOMAIN = "strata.v1"
REQUEST_ID = "x-request-id"
"""Metadata key of the request id: taken from the call when the client sends one
(up to 128 printable characters), else made up; logged with everything the RPC
logs, and returned in the response's trailing metadata."""
log = structlog.get_logger("strata.api")

_CODES: dict[type[errors.StrataError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.VersionConflict: grpc.StatusCode.ABORTED,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.CursorExpired: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.QuotaExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.QueryTimeout: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_code(error: errors.StrataError) -> grpc.StatusCode:
    """The gRPC code for a domain error (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def _limit_details(error: errors.StrataError) -> list[message.Message]:
    """google.rpc.QuotaFailure for a storage quota: what a client library reads to
    tell "delete data" from "wait and retry" (RetryInfo, which to_status adds for
    any error with a retry_after)."""
    if isinstance(error, errors.QuotaExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"namespace:{error.namespace}",
            description=f"{error.used_bytes} of {error.max_bytes} bytes used",
        )
        return [error_details_pb2.QuotaFailure(violations=[violation])]
    return []


def _children_details(error: errors.StrataError) -> list[message.Message]:
    """google.rpc.PreconditionFailure for a refused delete: one violation per child
    (type "transcript" or "artifact", subject its id), so a caller can list or
    delete them without parsing the message."""
    if isinstance(error, HasChildren):
        violations = [
            error_details_pb2.PreconditionFailure.Violation(
                type=child.kind,
                subject=child.id,
                description=f"names record {child.parent} as its parent",
            )
            for child in error.children
        ]
        return [error_details_pb2.PreconditionFailure(violations=violations)]
    return []


def to_status(error: errors.StrataError) -> grpc.Status:
    """A rich status for a domain error."""
    code = status_code(error)
    details: list[message.Message] = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    details.append(info)
    details += _limit_details(error)
    details += _children_details(error)
    if error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    if error.retry_after is not None:
        # RetryInfo for a request rate or an overloaded server: when to try again
        # (rounded up, never zero).
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, math.ceil(error.retry_after * 1e9)))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    message = status_pb2.Status(code=code.value[0], message=error.message, details=packed)
    return rpc_status.to_status(message)


_INTERNAL = status_pb2.Status(
    code=code_pb2.INTERNAL, message="internal error; the server log has the details"
)

S = TypeVar("S")
C = TypeVar("C", bound=type)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


class _StatusFields(NamedTuple):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class _Status(_StatusFields, grpc.Status):
    """A grpc.Status (the interface abort_with_status takes) with our trailers."""


def _request_id(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if (
            key == REQUEST_ID
            and isinstance(value, str)
            and 0 < len(value) <= 128
            and value.isprintable()
        ):
            return value
    # Only for finding a call's log lines, never a secret: the process's PRNG, where
    # secrets.token_hex made a getrandom system call on every RPC.
    return f"{random.getrandbits(64):016x}"


def _begin(context: Context) -> str:
    """Start an RPC: its request id, bound to every log line of this task."""
    request_id = _request_id(context)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


async def _abort(context: Context, error: Exception, method: str, request_id: str) -> None:
    if isinstance(error, errors.StrataError):
        status = to_status(error)
    else:
        log.exception("unhandled error", method=method)
        status = rpc_status.to_status(_INTERNAL)
    trailers = (*status.trailing_metadata, (REQUEST_ID, request_id))
    await context.abort_with_status(_Status(status.code, status.details, trailers))


def refusal(
    context: Context, method: str, error: errors.StrataError, started: float
) -> grpc.Status:
    """The status that answers an RPC with `error` before its servicer ran (its
    request did not decode, or held an out-of-range time), counted and tagged with
    the request id as the servicer wrappers below do. `method` is the
    `Service/Method` label; `started` the perf_counter reading when the RPC began."""
    request_id = _begin(context)
    metrics.rpc_finished(method, status_code(error).name, time.perf_counter() - started)
    status = to_status(error)
    return _Status(
        status.code, status.details, (*status.trailing_metadata, (REQUEST_ID, request_id))
    )


async def refuse(
    context: Context, method: str, error: errors.StrataError, started: float
) -> NoReturn:
    """Abort an RPC with `refusal(...)`."""
    await context.abort_with_status(refusal(context, method, error, started))
    raise AssertionError("unreachable: abort raises")


def _code_of(error: BaseException) -> str:
    if isinstance(error, errors.StrataError):
        return status_code(error).name
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


def _method(handler: Callable[..., Any]) -> str:
    """`Service/Method` of a servicer method, as metrics label it."""
    return handler.__qualname__.replace(".", "/")


class _Call:
    """One RPC as the unary and streaming wrappers keep it: when it started, its
    request id, its admission slot, and the code it ends with (None once counted)."""

    def __init__(self, context: Context, method: str) -> None:
        self.started = time.perf_counter()
        self.context = context
        self.method = method
        self.request_id = _begin(context)
        self.code: str | None = "OK"
        self._limits = admission.CURRENT.get()
        self._peer: str | None = None

    def admit(self) -> None:
        if self._limits is not None:
            self._peer = self._limits.admit(self.context, self.method)

    def succeeded(self) -> None:
        self.context.set_trailing_metadata(((REQUEST_ID, self.request_id),))

    async def fail(self, error: Exception) -> None:
        """Abort the RPC with `error`'s status; returns only for an abort already
        under way (which the caller re-raises)."""
        if isinstance(error, grpc.aio.AbortError):
            return
        # Counted before the status goes out: a caller that saw the error and then
        # scrapes the metrics finds it there.
        metrics.rpc_finished(self.method, _code_of(error), time.perf_counter() - self.started)
        self.code = None
        await _abort(self.context, error, self.method, self.request_id)

    def finish(self) -> None:
        if self._peer is not None and self._limits is not None:
            self._limits.release(self._peer)
        if self.code is not None:
            metrics.rpc_finished(self.method, self.code, time.perf_counter() - self.started)


def unary(
    handler: Callable[[S, Req, Context], Awaitable[Resp]],
) -> Callable[[S, Req, Context], Awaitable[Resp]]:
    """Wrap a unary servicer method: domain errors become rich statuses, and the
    RPC gets its request id and its metrics."""
    method = _method(handler)

    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: Context) -> Resp:
        call = _Call(context, method)
        try:
            call.admit()
            response = await handler(self, request, context)
            call.succeeded()
            return response
        except Exception as error:
            await call.fail(error)
            raise
        except asyncio.CancelledError:
            call.code = "CANCELLED"
            raise
        finally:
            call.finish()

    return wrapper


def streaming(
    handler: Callable[[S, Req, Context], AsyncIterator[Resp]],
) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
    """Wrap a server-streaming servicer method as `unary` does, and count it
    among the open streams while it runs."""
    method = _method(handler)
    open_streams = metrics.stream_gauge(method)

    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
        call = _Call(context, method)
        open_streams.inc()
        try:
            call.admit()
            async for item in handler(self, request, context):
                yield item
            call.succeeded()
        except Exception as error:
            await call.fail(error)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # GeneratorExit: grpc stopped taking messages, as a write failed because
            # the caller went away before grpc noticed the cancellation.
            call.code = "CANCELLED"
            raise
        finally:
            open_streams.dec()
            call.finish()

    return wrapper


def rpcs(service: ServiceDescriptor) -> Callable[[C], C]:
    """The servicer class decorator: each method of `service`, as the class defines
    it, wrapped by `unary` or `streaming`, as the descriptor says its response is one
    message or a stream. Taken from the descriptor, no RPC can be left without its
    statuses, request id and metrics; a class missing one of the service's methods
    is refused where it is defined."""

    def wrap(servicer: C) -> C:
        for method in service.methods:
            handler = servicer.__dict__.get(method.name)
            if handler is None:
                raise TypeError(f"{servicer.__name__} lacks {service.name}.{method.name}")
            wrapper = streaming if method.server_streaming else unary
            setattr(servicer, method.name, wrapper(handler))
        return servicer

    return wrap
