"""The one path between a client and the server, one class per I/O model.

A transport owns the channel and the generated stubs, and sends the calls that
`strata._rpc` describes: it resolves the namespace of each request, attaches
the call metadata (bearer token, actor), sets each attempt's deadline, retries
what `RetrySchedule` allows, and turns `grpc.RpcError` into `StrataError`.
Nothing else in the package touches a stub or the metadata: the clients, the
followers, subscriptions, transfers and workers all go through `Transport`
(blocking) or `AsyncTransport` (asyncio), whose methods mirror each other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from strata._retry import RetrySchedule
from strata._rpc import Rpc, Service, StreamRpc
from strata.config import ClientConfig
from strata.errors import from_rpc_error
from strata.v1 import (
    admin_pb2_grpc,
    artifacts_pb2_grpc,
    cache_pb2_grpc,
    queue_pb2_grpc,
    records_pb2_grpc,
    search_pb2_grpc,
    transaction_pb2_grpc,
    transcripts_pb2_grpc,
)

__all__ = ["AsyncStream", "AsyncTransport", "Cancelled", "Prepared", "Stream", "Transport"]

T = TypeVar("T")
OutT = TypeVar("OutT")

_STUBS: dict[Service, Callable[[Any], object]] = {
    "records": records_pb2_grpc.RecordServiceStub,
    "transactions": transaction_pb2_grpc.TransactionServiceStub,
    "admin": admin_pb2_grpc.AdminServiceStub,
    "queue": queue_pb2_grpc.QueueServiceStub,
    "transcripts": transcripts_pb2_grpc.TranscriptServiceStub,
    "cache": cache_pb2_grpc.CacheServiceStub,
    "artifacts": artifacts_pb2_grpc.ArtifactServiceStub,
    "search": search_pb2_grpc.SearchServiceStub,
}

POLL_SECONDS = 0.1
"""How often a blocking call that a stop event may cancel looks at the event."""


class Cancelled(Exception):
    """The call was cancelled because its stop event was set."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A unary call as it goes on the wire."""

    method: Any
    """The stub's multi-callable."""
    request: Message
    """The request, in its namespace."""
    timeout: float
    """Deadline of each attempt, in seconds: the client's timeout plus the
    wait of a long poll."""


class _Wire:
    """What both transports share: the configuration, the metadata and the stubs."""

    def __init__(self, config: ClientConfig, channel: Any) -> None:
        self.config = config
        """The settings of the client this transport serves."""
        self._metadata = config.call_metadata()
        self._stubs = {service: stub(channel) for service, stub in _STUBS.items()}

    def prepare(self, rpc: Rpc[Any, Any]) -> Prepared:
        """The stub method, request and per-attempt deadline of `rpc`."""
        return Prepared(
            getattr(self._stubs[rpc.service], rpc.method),
            rpc.request(self.config.namespace),
            self.config.timeout + rpc.wait,
        )

    def _schedule(self, rpc: Rpc[Any, Any]) -> RetrySchedule:
        return RetrySchedule(self.config.retry, idempotent=rpc.idempotent)

    def _open(self, rpc: StreamRpc[Any, Any], then: Any) -> Any:
        """Start a streaming call: its request, followed by the messages of `then`
        when the call streams its requests too."""
        method = getattr(self._stubs[rpc.service], rpc.method)
        request = rpc.request(self.config.namespace)
        return method(
            request if then is None else _followed(request, then), metadata=self._metadata
        )


def _followed(first: Message, then: Any) -> Any:
    if isinstance(then, AsyncIterable):

        async def requests() -> Any:
            yield first
            async for message in then:
                yield message

        return requests()

    def blocking() -> Any:
        yield first
        yield from then

    return blocking()


class Stream(Generic[OutT]):
    """The responses of a streaming call on the blocking transport."""

    def __init__(self, call: Any, parse: Callable[[Any], OutT]) -> None:
        self._call = call
        self._parse = parse

    def read(self) -> OutT | None:
        """The next response, waiting for it; None once the server ended the
        stream. Raises the stream's error as a StrataError."""
        try:
            message = next(self._call)
        except StopIteration:
            return None
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        return self._parse(message)

    def cancel(self) -> None:
        """End the call (from any thread): a pending `read` raises CANCELLED."""
        self._call.cancel()


class AsyncStream(Generic[OutT]):
    """The responses of a streaming call on the asyncio transport."""

    def __init__(self, call: Any, parse: Callable[[Any], OutT]) -> None:
        self._call = call
        self._parse = parse

    async def read(self) -> OutT | None:
        """As `Stream.read`; a `read` pending when the call is cancelled raises
        asyncio.CancelledError."""
        try:
            message = await self._call.read()
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        return None if message is grpc.aio.EOF else self._parse(message)

    def cancel(self) -> None:
        """End the call."""
        self._call.cancel()


class Transport(_Wire):
    """The blocking client's transport, over a `grpc.Channel`; safe to share
    between threads."""

    def __init__(self, config: ClientConfig) -> None:
        options = config.grpc_options()
        credentials = config.channel_credentials()
        if credentials is None:
            self._channel = grpc.insecure_channel(config.target, options=options)
        else:
            self._channel = grpc.secure_channel(config.target, credentials, options)
        super().__init__(config, self._channel)

    def unary(self, rpc: Rpc[Any, T], *, stop: threading.Event | None = None) -> T:
        """Send `rpc`, retrying as its schedule allows, and return its result.
        With `stop`, the call (or the wait before a retry) is cancelled once
        `stop` is set, raising `Cancelled`."""
        call = self.prepare(rpc)
        schedule = self._schedule(rpc)
        while True:
            try:
                if stop is None:
                    response = call.method(
                        call.request, timeout=call.timeout, metadata=self._metadata
                    )
                else:
                    response = _until(
                        call.method.future(
                            call.request, timeout=call.timeout, metadata=self._metadata
                        ),
                        stop,
                    )
            except grpc.RpcError as err:
                delay = schedule.backoff(err)
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise Cancelled from None
            else:
                return rpc.parse(response)

    def server_stream(
        self, rpc: StreamRpc[Any, OutT], then: Iterable[Message] | None = None
    ) -> Stream[OutT]:
        """Open a call whose responses stream; with `then`, its requests stream
        too: the request, then the messages of `then`."""
        return Stream(self._open(rpc, then), rpc.parse)

    def client_stream(self, rpc: StreamRpc[Any, OutT], then: Iterable[Message]) -> OutT:
        """Send the request, then the messages of `then`, and return the result
        of the one response."""
        try:
            return rpc.parse(self._open(rpc, then))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def close(self) -> None:
        """Close the channel; calls after this fail."""
        self._channel.close()


def _until(future: Any, stop: threading.Event) -> Any:
    """The response of a call started as a future, cancelling it once `stop` is set."""
    try:
        while True:
            if stop.is_set():
                future.cancel()
            try:
                return future.result(timeout=POLL_SECONDS)
            except grpc.FutureTimeoutError:
                continue
    except grpc.FutureCancelledError:
        raise Cancelled from None


class AsyncTransport(_Wire):
    """The asyncio client's transport, over a `grpc.aio.Channel`; use it from
    one event loop. A call is cancelled by cancelling the task awaiting it."""

    def __init__(self, config: ClientConfig) -> None:
        options = config.grpc_options()
        credentials = config.channel_credentials()
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(config.target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(config.target, credentials, options=options)
        super().__init__(config, self._channel)

    async def unary(self, rpc: Rpc[Any, T]) -> T:
        """As `Transport.unary`."""
        call = self.prepare(rpc)
        schedule = self._schedule(rpc)
        while True:
            try:
                response = await call.method(
                    call.request, timeout=call.timeout, metadata=self._metadata
                )
            except grpc.RpcError as err:
                await asyncio.sleep(schedule.backoff(err))
            else:
                return rpc.parse(response)

    def server_stream(
        self, rpc: StreamRpc[Any, OutT], then: AsyncIterable[Message] | None = None
    ) -> AsyncStream[OutT]:
        """As `Transport.server_stream`."""
        return AsyncStream(self._open(rpc, then), rpc.parse)

    async def client_stream(self, rpc: StreamRpc[Any, OutT], then: AsyncIterable[Message]) -> OutT:
        """As `Transport.client_stream`."""
        try:
            return rpc.parse(await self._open(rpc, then))
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    async def close(self) -> None:
        """Close the channel; calls after this fail."""
        await self._channel.close()
