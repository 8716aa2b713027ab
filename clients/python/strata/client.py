"""The blocking client.

    with strata.Client("127.0.0.1:50051", namespace="acme") as client:
        record = client.create_record("tickets", {"title": "Printer on fire"})

Its methods are declared in `strata._base.ClientBase` and described in
`strata._requests`; this module only sends them over a `grpc.Channel`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc

from strata import _transfers
from strata._base import ClientBase
from strata._requests import PagedRpc, Rpc
from strata.artifacts import Artifact, Progress, Source, Target
from strata.config import ClientConfig
from strata.follow import DEFAULT_RECONNECT_FOR, Follow
from strata.worker import QueueHandle

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientBase[grpc.Channel]):
    """A blocking connection to a Strata server; use it as a context manager or
    `close()` it. Safe to share between threads.

    `Client(target=None, *, config=None, namespace=None, timeout=None, actor=None,
    retry=None, token=None, tls=None)`: the arguments given win over the fields
    of `config`; a token and TLS not given come from $STRATA_TOKEN and
    $STRATA_TLS_CA when set. Every method but `server_info` takes `namespace=` to
    override the default for one call. Failed calls raise `strata.StrataError`
    subclasses.
    """

    def _open_channel(self, config: ClientConfig) -> grpc.Channel:
        credentials = config.channel_credentials()
        if credentials is None:
            return grpc.insecure_channel(config.target, options=config.grpc_options())
        return grpc.secure_channel(config.target, credentials, config.grpc_options())

    def close(self) -> None:
        """Close the channel; calls after this fail."""
        self._channel.close()

    def queue(self, name: str, *, namespace: str | None = None) -> QueueHandle:
        """The queue `name`, to work on its jobs: `.work(handler)` or
        `for job in .jobs(): ...` (see `strata.QueueHandle`)."""
        return QueueHandle(self, name, namespace=namespace)

    def follow(
        self,
        transcript_id: str,
        from_seq: int = 1,
        *,
        max_batch_bytes: int = 0,
        reconnect_for: float | None = DEFAULT_RECONNECT_FOR,
        namespace: str | None = None,
    ) -> Follow:
        """Iterate over a transcript's entries from `from_seq` (negative: that many
        back from the end) and on as they are appended, each exactly once, until
        the transcript is sealed; resumes after a dropped connection for up to
        `reconnect_for` seconds (None: forever). See `strata.follow`."""
        return Follow(
            self,
            transcript_id,
            from_seq,
            max_batch_bytes=max_batch_bytes,
            reconnect_for=reconnect_for,
            namespace=namespace,
        )

    def read_transcript(
        self,
        transcript_id: str,
        from_seq: int = 1,
        *,
        max_batch_bytes: int = 0,
        namespace: str | None = None,
    ) -> Follow:
        """Iterate over a transcript's entries from `from_seq` (negative: that many
        back from the end) up to its end as of when the read catches up. Raises
        OutOfRange for a `from_seq` past the end."""
        return Follow(
            self,
            transcript_id,
            from_seq,
            follow=False,
            max_batch_bytes=max_batch_bytes,
            namespace=namespace,
        )

    def upload(
        self,
        source: Source,
        *,
        owner: str,
        kind: str,
        name: str | None = None,
        content_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        request_id: str | None = None,
        namespace: str | None = None,
        progress: Progress | None = None,
    ) -> Artifact:
        """Upload a file (a path, or a binary file object from its position) as an
        artifact of `owner` and `kind`, streamed in 1 MiB chunks. A re-readable
        source is hashed first: content the server already stores for the
        namespace is not sent again. `name` defaults to the file's name,
        `content_type` to a guess from it. `progress(sent, total)` is called as
        bytes go. Raises InvalidArgument, ResourceExhausted (too large),
        Unavailable."""
        return _transfers.upload(
            self,
            source,
            owner=owner,
            kind=kind,
            name=name,
            content_type=content_type,
            labels=labels,
            request_id=request_id,
            namespace=namespace,
            progress=progress,
        )

    def download(
        self,
        id: str,
        target: Target,
        *,
        offset: int = 0,
        limit: int = 0,
        namespace: str | None = None,
        progress: Progress | None = None,
    ) -> Artifact:
        """Download an artifact's content, or `limit` bytes from `offset` (0: to the
        end), into `target`: a path (written beside it, renamed into place when
        complete) or a binary file object. A whole download is checked against
        the artifact's sha256 (DataLoss if it differs). `progress(received,
        total)` is called as bytes arrive. Returns the artifact's metadata.
        Raises NotFound, OutOfRange, InvalidArgument, Unavailable."""
        return _transfers.download(
            self, id, target, offset=offset, limit=limit, namespace=namespace, progress=progress
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, rpc: Rpc[Any, T]) -> T:
        method, request, timeout, schedule = self._prepare(rpc)
        while True:
            try:
                response = method(request, timeout=timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                time.sleep(schedule.backoff(err))
            else:
                return rpc.parse(response)

    def _iterate(self, pages: PagedRpc[T]) -> Iterator[T]:
        token = ""
        while True:
            page = self._call(pages(token))
            yield from page.items
            token = page.next_page_token
            if not token:
                return
