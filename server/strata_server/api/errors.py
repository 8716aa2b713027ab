"""The one place domain errors become gRPC statuses.

Every status carries google.rpc.ErrorInfo (reason, domain, metadata) and, for bad
input, google.rpc.BadRequest field violations. Anything that is not a StrataError is
a bug in Strata: it is logged with its traceback and reported as INTERNAL without
leaking internals to the caller.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from strata_server.core import errors

DOMAIN = "strata.v1"
log = structlog.get_logger("strata.api")

_CODES: dict[type[errors.StrataError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.VersionConflict: grpc.StatusCode.ABORTED,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: errors.StrataError) -> grpc.StatusCode:
    """The gRPC code for a domain error (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def to_status(error: errors.StrataError) -> grpc.Status:
    """A rich status for a domain error."""
    code = status_code(error)
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    details.append(info)
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
Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str
) -> None:
    if isinstance(error, errors.StrataError):
        await context.abort_with_status(to_status(error))
    log.exception("unhandled error", method=method)
    await context.abort_with_status(rpc_status.to_status(_INTERNAL))


def unary(
    handler: Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], Awaitable[Resp]]:
    """Wrap a unary servicer method so domain errors become rich statuses."""

    @functools.wraps(handler)
    async def wrapper(self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]) -> Resp:
        try:
            return await handler(self, request, context)
        except (errors.StrataError, Exception) as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await _abort(context, error, handler.__qualname__)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    handler: Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]],
) -> Callable[[S, Req, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Resp]]:
    """Wrap a server-streaming servicer method so domain errors become rich statuses."""

    @functools.wraps(handler)
    async def wrapper(
        self: S, request: Req, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Resp]:
        try:
            async for item in handler(self, request, context):
                yield item
        except (errors.StrataError, Exception) as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await _abort(context, error, handler.__qualname__)

    return wrapper
