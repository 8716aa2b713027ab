"""Every request message is decoded where a bad one can be answered INVALID_ARGUMENT.

grpc decodes a request with the handler's `request_deserializer` before any servicer
code runs, and answers a message that does not parse with UNKNOWN (INTERNAL on a
client stream) and an ERROR traceback in the log: a caller's fault reported as the
server's. So `DecodingInterceptor`, the server's outermost interceptor, hands grpc
handlers that keep the bytes and decode them inside the behaviour:

- a message that does not parse (bad wire format, invalid UTF-8 in a string, nesting
  beyond protobuf's recursion limit) is INVALID_ARGUMENT with reason
  MALFORMED_REQUEST and one WARNING line in the log, without a traceback;
- a Timestamp or Duration anywhere in it outside the range its type defines is
  INVALID_ARGUMENT naming the field (api/time_fields.py).

Unary requests are decoded before the servicer is called; streamed requests (an
upload, an import) are decoded one by one as the servicer iterates them, so a bad
message in the middle of a stream fails that stream at that message, through the
servicer's own error handling (it sees an InvalidArgument). Health and reflection
go through it too, so no method of this server answers UNKNOWN for bytes.

It is the server's one interceptor (api/wrapping_interceptor.py): under `--auth
token` api/auth.py's subclass of it adds the caller's checks, in this same stage,
and a unary call's checks in this same coroutine (`Route`).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message

from strata_server.api import time_fields
from strata_server.api.status_codes import refusal, refuse
from strata_server.api.wrapping_interceptor import Handler, WrappingInterceptor
from strata_server.core import errors

log = structlog.get_logger("strata.api")

Context = grpc.aio.ServicerContext[Any, Any]
Decode = Callable[[bytes], Message]
Behaviour = Callable[[Any, Context], Awaitable[Any]]
Route = Callable[[Any], Behaviour]
"""Which behaviour serves a decoded unary request, chosen without awaiting: so an
inner step (the caller's checks) that lets most calls straight through costs them
no coroutine of its own."""


def _label(method: str) -> str:
    """`Service/Method` (as the metrics label it) of `/package.Service/Method`."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service.rpartition('.')[2]}/{name}"


WARN_EVERY_SECONDS = 10.0
"""At most one "undecodable request" line per method in this many seconds: a caller
sending garbage in a loop must not be able to flood the log (every refusal is still
answered, and counted by the refusal metrics)."""


class _Throttle:
    """When the next warning of one method may be written, and how many were held
    back since the last one (said on the next line that is written)."""

    __slots__ = ("held", "next_time")

    def __init__(self) -> None:
        self.next_time = 0.0
        self.held = 0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next_time:
            self.held += 1
            return False
        self.next_time = now + WARN_EVERY_SECONDS
        return True


def _decoder(deserialize: Callable[[bytes], Any], method: str) -> Decode:
    """`deserialize` made to raise only InvalidArgument, plus the time range check."""
    message_type = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    type_name = message_type.full_name if message_type is not None else "request"

    throttle = _Throttle()

    def decode(raw: bytes) -> Message:
        try:
            message: Message = deserialize(raw)
        except Exception as error:  # whatever the parser raises, the bytes are at fault
            if throttle.due():
                held, throttle.held = throttle.held, 0
                log.warning(
                    "undecodable request",
                    method=method,
                    size=len(raw),
                    error=str(error)[:200],
                    not_logged_since_last=held,
                )
            raise errors.InvalidArgument(
                f"the request is not a valid {type_name} message",
                reason="MALFORMED_REQUEST",
                metadata={"message_type": type_name},
                violations=[errors.FieldViolation("", f"is not a valid {type_name} message")],
            ) from None
        if isinstance(message, Message):
            time_fields.check(message)
        return message

    return decode


async def _decoded(raw_messages: AsyncIterator[bytes], decode: Decode) -> AsyncIterator[Message]:
    async for raw in raw_messages:
        yield decode(raw)


def decoded(handler: Handler, method: str, route: Route | None = None) -> Handler:
    """`handler` with its request decoding moved into its behaviour; a unary
    request, once decoded, goes to the behaviour `route` picks for it, if given."""
    deserialize = handler.request_deserializer
    if deserialize is None:
        return handler
    decode = _decoder(deserialize, method)
    label = _label(method)
    make, kind = _HANDLER_KINDS[handler.request_streaming, handler.response_streaming]
    behaviour = getattr(handler, kind)
    wrapped: Handler = make(
        _stream_request(behaviour, decode, label)
        if handler.request_streaming
        else _unary_request(behaviour, decode, label, route),
        response_serializer=handler.response_serializer,
    )
    return wrapped


_HANDLER_KINDS: dict[tuple[bool, bool], tuple[Callable[..., Any], str]] = {
    (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
    (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
    (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
    (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream"),
}
"""(request streams, response streams) -> the grpc factory of such a handler and
the handler attribute holding its behaviour."""


def _unary_request(behaviour: Any, decode: Decode, label: str, route: Route | None) -> Any:
    """A behaviour taking the request's bytes: decoded, checked, then `behaviour`
    (or, for a unary call, the one `route` picks)."""
    if inspect.isasyncgenfunction(behaviour):

        async def stream(raw: bytes, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                request = decode(raw)
            except errors.StrataError as error:
                await refuse(context, label, error, started)
            async with contextlib.aclosing(behaviour(request, context)) as responses:
                async for response in responses:
                    yield response

        return stream
    if inspect.iscoroutinefunction(behaviour):

        async def call(raw: bytes, context: Context) -> Any:
            started = time.perf_counter()
            try:
                request = decode(raw)
            except errors.StrataError as error:
                await refuse(context, label, error, started)
            if route is not None:
                return await route(request)(request, context)
            return await behaviour(request, context)

        return call

    # A synchronous method (a generated stub that answers UNIMPLEMENTED, such as
    # the aio health servicer's List): grpc runs it in its thread pool, where the
    # context is a synchronous one.
    def call_sync(raw: bytes, context: Any) -> Any:
        started = time.perf_counter()
        try:
            request = decode(raw)
        except errors.StrataError as error:
            status = refusal(context, label, error, started)
            context.abort(status.code, status.details, status.trailing_metadata)
        return behaviour(request, context)

    return call_sync


def _stream_request(behaviour: Any, decode: Decode, label: str) -> Any:
    """A behaviour taking a stream of request bytes, each decoded as it is read.

    Strata's servicers answer an InvalidArgument from the stream themselves; one
    that escapes a servicer (health, reflection) is answered here."""
    if inspect.isasyncgenfunction(behaviour):

        async def stream(raw: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async with contextlib.aclosing(behaviour(_decoded(raw, decode), context)) as out:
                    async for response in out:
                        yield response
            except errors.StrataError as error:
                await refuse(context, label, error, started)

        return stream
    if not inspect.iscoroutinefunction(behaviour):
        raise TypeError(f"{label}: only async servicer methods are supported")

    async def call(raw: AsyncIterator[bytes], context: Context) -> Any:
        started = time.perf_counter()
        try:
            return await behaviour(_decoded(raw, decode), context)
        except errors.StrataError as error:
            await refuse(context, label, error, started)

    return call


class DecodingInterceptor(WrappingInterceptor):
    """The server's one interceptor: grpc deserializes with the handler it returns,
    so the handler this returns keeps the bytes and decodes them inside its
    behaviour, as this module says, before the caller's checks (api/auth.py's
    subclass; they read the request's namespace) and the servicer."""

    def wrap(self, method: str, handler: Handler) -> Handler:
        return decoded(handler, method)
