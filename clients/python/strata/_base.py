"""What Client and AsyncClient share: configuration, stubs and the table of methods.

The methods are declared once, in `ClientBase`, as `Method` descriptors over the
call descriptions of `strata._requests`. A `Method` read from a client runs the
description through that client's `_call` (or `_iterate` for List-style calls),
the only code that differs between the blocking and the asyncio client. Its
`__get__` overloads give type checkers the right result for each kind of client:
`T` on a `Client`, a coroutine of `T` on an `AsyncClient`.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

import grpc
import grpc.aio
from google.protobuf.message import Message

from strata import (
    _artifact_requests,
    _cache_requests,
    _queue_requests,
    _requests,
    _transcript_requests,
)
from strata._requests import PagedRpc, Rpc, Service
from strata._retry import RetrySchedule
from strata.config import ClientConfig, RetryPolicy, TLSConfig
from strata.v1 import (
    admin_pb2_grpc,
    artifacts_pb2_grpc,
    cache_pb2_grpc,
    queue_pb2_grpc,
    records_pb2_grpc,
    transaction_pb2_grpc,
    transcripts_pb2_grpc,
)

P = ParamSpec("P")
T = TypeVar("T")
SyncT = TypeVar("SyncT")
AsyncT = TypeVar("AsyncT")
ChannelT = TypeVar("ChannelT", grpc.Channel, grpc.aio.Channel)


class Method(Generic[P, SyncT, AsyncT]):
    """A client method: takes the arguments of `build` and sends what it returns
    through the client's `run`. Its result is `SyncT` on a blocking client and
    `AsyncT` on an asyncio one."""

    def __init__(
        self, build: Callable[P, object], run: Callable[[ClientBase[Any], Any], Any]
    ) -> None:
        self._build = build
        self._run = run
        self._signature = inspect.signature(build).replace(
            return_annotation=inspect.Signature.empty
        )
        self._name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: ClientBase[grpc.Channel], owner: type[Any]) -> Callable[P, SyncT]: ...
    @overload
    def __get__(
        self, client: ClientBase[grpc.aio.Channel], owner: type[Any]
    ) -> Callable[P, AsyncT]: ...
    def __get__(self, client: ClientBase[Any] | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        build, run = self._build, self._run

        def method(*args: Any, **kwargs: Any) -> Any:
            return run(client, build(*args, **kwargs))

        method.__name__ = self._name
        method.__qualname__ = f"{type(client).__name__}.{self._name}"
        method.__doc__ = self.__doc__
        setattr(method, "__signature__", self._signature)  # noqa: B010 - not declared
        return method


def unary(build: Callable[P, Rpc[Any, T]]) -> Method[P, T, Coroutine[Any, Any, T]]:
    """A method that sends one call and returns its result."""
    return Method(build, lambda client, rpc: client._call(rpc))


def paged(build: Callable[P, PagedRpc[T]]) -> Method[P, Iterator[T], AsyncIterator[T]]:
    """A method that iterates over the results of every page of a List-style call."""
    return Method(build, lambda client, pages: client._iterate(pages))


class ClientBase(abc.ABC, Generic[ChannelT]):
    """A connection to a Strata server: configuration, channel, stubs and methods.

    Takes a `ClientConfig` as `config`, and/or its most common fields as
    arguments, which win over `config`: `Client("host:50051", namespace="acme")`.
    Without a `token`, $STRATA_TOKEN is sent when set; without `tls` (or
    `credentials`), $STRATA_TLS_CA, when set, turns TLS on trusting that file.
    Every method but `server_info` takes `namespace=` to override
    `config.namespace` for that call.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        config: ClientConfig | None = None,
        namespace: str | None = None,
        timeout: float | None = None,
        actor: str | None = None,
        retry: RetryPolicy | None = None,
        token: str | None = None,
        tls: TLSConfig | None = None,
    ) -> None:
        overrides: dict[str, Any] = {
            "target": target,
            "namespace": namespace,
            "timeout": timeout,
            "actor": actor,
            "retry": retry,
            "token": token,
            "tls": tls,
        }
        self.config: ClientConfig = dataclasses.replace(
            config or ClientConfig(),
            **{name: value for name, value in overrides.items() if value is not None},
        ).with_environment()
        """The settings this client runs with."""
        self._metadata = self.config.call_metadata()
        self._channel: ChannelT = self._open_channel(self.config)
        self._stubs: dict[Service, object] = {
            "records": records_pb2_grpc.RecordServiceStub(self._channel),
            "transactions": transaction_pb2_grpc.TransactionServiceStub(self._channel),
            "admin": admin_pb2_grpc.AdminServiceStub(self._channel),
            "queue": queue_pb2_grpc.QueueServiceStub(self._channel),
            "transcripts": transcripts_pb2_grpc.TranscriptServiceStub(self._channel),
            "cache": cache_pb2_grpc.CacheServiceStub(self._channel),
            "artifacts": artifacts_pb2_grpc.ArtifactServiceStub(self._channel),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.target!r}, namespace={self.config.namespace!r})"

    @abc.abstractmethod
    def _open_channel(self, config: ClientConfig) -> ChannelT:
        """A new channel to `config.target`."""

    @abc.abstractmethod
    def _call(self, rpc: Rpc[Any, Any]) -> Any:
        """Send `rpc`, retrying as its schedule allows: the one path of every call."""

    @abc.abstractmethod
    def _iterate(self, pages: PagedRpc[Any]) -> Any:
        """Iterate over the items of every page, fetching each as it is reached."""

    def _prepare(self, rpc: Rpc[Any, Any]) -> tuple[Any, Message, float, RetrySchedule]:
        """The stub method to invoke for `rpc`, its request, the deadline of each
        attempt in seconds (the timeout, plus the wait of a long poll), and its
        retry schedule."""
        method = getattr(self._stubs[rpc.service], rpc.method)
        schedule = RetrySchedule(self.config.retry, idempotent=rpc.idempotent)
        return method, rpc.request(self.config.namespace), self.config.timeout + rpc.wait, schedule

    create_record = unary(_requests.create_record)
    get_record = unary(_requests.get_record)
    batch_get_records = unary(_requests.batch_get_records)
    update_record = unary(_requests.update_record)
    delete_record = unary(_requests.delete_record)
    list_records = paged(_requests.list_records)
    count_records = unary(_requests.count_records)
    search_records = paged(_requests.search_records)
    commit = unary(_requests.commit)
    server_info = unary(_requests.server_info)

    enqueue = unary(_queue_requests.enqueue)
    batch_enqueue = unary(_queue_requests.batch_enqueue)
    lease_jobs = unary(_queue_requests.lease_jobs)
    ack_job = unary(_queue_requests.ack_job)
    ack_jobs = unary(_queue_requests.ack_jobs)
    fail_job = unary(_queue_requests.fail_job)
    release_job = unary(_queue_requests.release_job)
    extend_lease = unary(_queue_requests.extend_lease)
    cancel_job = unary(_queue_requests.cancel_job)
    get_job = unary(_queue_requests.get_job)
    list_jobs = paged(_queue_requests.list_jobs)
    retry_job = unary(_queue_requests.retry_job)
    pause_queue = unary(_queue_requests.pause_queue)
    resume_queue = unary(_queue_requests.resume_queue)
    queue_stats = unary(_queue_requests.queue_stats)

    create_transcript = unary(_transcript_requests.create_transcript)
    get_transcript = unary(_transcript_requests.get_transcript)
    list_transcripts = paged(_transcript_requests.list_transcripts)
    append_entries = unary(_transcript_requests.append_entries)
    append = unary(_transcript_requests.append)
    seal_transcript = unary(_transcript_requests.seal_transcript)
    delete_transcript = unary(_transcript_requests.delete_transcript)
    search_transcripts = paged(_transcript_requests.search_transcripts)

    cache_get = unary(_cache_requests.cache_get)
    cache_set = unary(_cache_requests.cache_set)
    cache_delete = unary(_cache_requests.cache_delete)
    get_artifact = unary(_artifact_requests.get_artifact)
    list_artifacts = paged(_artifact_requests.list_artifacts)
    delete_artifact = unary(_artifact_requests.delete_artifact)
    find_missing_blobs = unary(_artifact_requests.find_missing_blobs)
    artifact_url = unary(_artifact_requests.artifact_url)
