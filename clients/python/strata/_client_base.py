"""What Client and AsyncClient share: configuration, transport and the table of methods.

The methods are declared once, in `ClientBase`, as `Method` descriptors over
the call descriptions of `strata._record_requests`, `strata._queue_requests`,
... A `Method` read from a client runs the description through that client's
`_call` (one call), `_iterate` (every page of a List-style call), `_run` (a
machine of `strata._machines`) or transport (a follower): the only code that
differs between the blocking and the asyncio client. Its `__get__` overloads
give type checkers the right result for each kind of client: `T` on a
`Client`, a coroutine of `T` on an `AsyncClient`.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

from strata import (
    _admin_requests,
    _artifact_requests,
    _artifact_streams,
    _cache_requests,
    _queue_requests,
    _record_requests,
    _search_requests,
    _transcript_requests,
    _transfer_streams,
)
from strata import follow as _follow
from strata._machines import Machine
from strata._rpc import PagedRpc, Rpc
from strata._transport import AsyncTransport, Transport
from strata.config import ClientConfig, RetryPolicy, TLSConfig
from strata.follow import AsyncFollow, Follow, Reading

P = ParamSpec("P")
T = TypeVar("T")
SyncT = TypeVar("SyncT")
AsyncT = TypeVar("AsyncT")
TransportT = TypeVar("TransportT", Transport, AsyncTransport)


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
    def __get__(self, client: ClientBase[Transport], owner: type[Any]) -> Callable[P, SyncT]: ...
    @overload
    def __get__(
        self, client: ClientBase[AsyncTransport], owner: type[Any]
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


def machine(build: Callable[P, Machine[T]]) -> Method[P, T, Coroutine[Any, Any, T]]:
    """A method that runs a machine (several calls, streams, file I/O) and
    returns its result."""
    return Method(build, lambda client, steps: client._run(steps))


def reader(build: Callable[P, Reading]) -> Method[P, Follow, AsyncFollow]:
    """A method that returns a follower of the transcript entries `build` names."""

    def open_reader(client: ClientBase[Any], reading: Reading) -> Follow | AsyncFollow:
        transport = client._transport
        if isinstance(transport, AsyncTransport):
            return AsyncFollow(transport, reading)
        return Follow(transport, reading)

    return Method(build, open_reader)


class ClientBase(abc.ABC, Generic[TransportT]):
    """A connection to a Strata server: configuration, transport and methods.

    Takes a `ClientConfig` as `config`, and/or its most common fields as
    arguments, which win over `config`: `Client("host:50051", namespace="acme")`.
    Without a `token`, $STRATA_TOKEN is sent when set; without `tls` (or
    `credentials`), $STRATA_TLS_CA, when set, turns TLS on trusting that file.
    Every method but `server_info` and the token calls takes `namespace=` to
    override `config.namespace` for that call.
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
        self._transport: TransportT = self._open_transport(self.config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.target!r}, namespace={self.config.namespace!r})"

    @abc.abstractmethod
    def _open_transport(self, config: ClientConfig) -> TransportT:
        """A new transport to `config.target`."""

    @abc.abstractmethod
    def _call(self, rpc: Rpc[Any, Any]) -> Any:
        """Send `rpc` (see `Transport.unary`)."""

    @abc.abstractmethod
    def _iterate(self, paged: PagedRpc[Any]) -> Any:
        """Iterate over the items of every page, fetching each as it is reached."""

    @abc.abstractmethod
    def _run(self, steps: Machine[Any]) -> Any:
        """Carry out a machine's effects (see `strata._machines`)."""

    create_record = unary(_record_requests.create_record)
    get_record = unary(_record_requests.get_record)
    batch_get_records = unary(_record_requests.batch_get_records)
    update_record = unary(_record_requests.update_record)
    delete_record = unary(_record_requests.delete_record)
    list_records = paged(_record_requests.list_records)
    count_records = unary(_record_requests.count_records)
    search_records = paged(_record_requests.search_records)
    commit = unary(_record_requests.commit)

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
    list_queues = paged(_queue_requests.list_queues)

    create_transcript = unary(_transcript_requests.create_transcript)
    get_transcript = unary(_transcript_requests.get_transcript)
    list_transcripts = paged(_transcript_requests.list_transcripts)
    append_entries = unary(_transcript_requests.append_entries)
    append = unary(_transcript_requests.append)
    seal_transcript = unary(_transcript_requests.seal_transcript)
    restore_transcript = unary(_transcript_requests.restore_transcript)
    delete_transcript = unary(_transcript_requests.delete_transcript)
    search_transcripts = paged(_transcript_requests.search_transcripts)
    follow = reader(_follow.follow)
    read_transcript = reader(_follow.read_transcript)

    search = paged(_search_requests.search)

    cache_get = unary(_cache_requests.cache_get)
    cache_set = unary(_cache_requests.cache_set)
    cache_delete = unary(_cache_requests.cache_delete)

    upload = machine(_artifact_streams.upload)
    download = machine(_artifact_streams.download)
    get_artifact = unary(_artifact_requests.get_artifact)
    list_artifacts = paged(_artifact_requests.list_artifacts)
    delete_artifact = unary(_artifact_requests.delete_artifact)
    find_missing_blobs = unary(_artifact_requests.find_missing_blobs)
    artifact_url = unary(_artifact_requests.artifact_url)
    restore_artifact = unary(_artifact_requests.restore_artifact)

    server_info = unary(_admin_requests.server_info)
    usage = unary(_admin_requests.usage)
    list_audit_entries = paged(_admin_requests.list_audit_entries)
    create_index = machine(_admin_requests.create_index)
    list_indexes = unary(_admin_requests.list_indexes)
    drop_index = unary(_admin_requests.drop_index)
    set_retention_policy = unary(_admin_requests.set_retention_policy)
    list_retention_policies = unary(_admin_requests.list_retention_policies)
    delete_retention_policy = unary(_admin_requests.delete_retention_policy)
    run_cleanup = machine(_admin_requests.run_cleanup)
    cleanup_status = unary(_admin_requests.cleanup_status)
    check_integrity = machine(_admin_requests.check_integrity)
    reindex_artifacts = machine(_admin_requests.reindex_artifacts)
    export_namespace = machine(_transfer_streams.export_namespace)
    import_namespace = machine(_transfer_streams.import_namespace)
    create_token = unary(_admin_requests.create_token)
    list_tokens = paged(_admin_requests.list_tokens)
    revoke_token = unary(_admin_requests.revoke_token)
    set_quota = unary(_admin_requests.set_quota)
    list_quotas = unary(_admin_requests.list_quotas)
    get_integrity_status = unary(_admin_requests.get_integrity_status)
