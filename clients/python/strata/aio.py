"""The asyncio client, on `grpc.aio`.

    async with strata.AsyncClient("127.0.0.1:50051") as client:
        record = await client.get_record("tickets", "t-1")
        async for ticket in client.list_records("tickets", filter='data.state = "open"'):
            ...

It has the methods of `strata.Client` as coroutines, and `list_records`,
`search_records` and `list_jobs` as async iterators. They are declared in
`strata._base.ClientBase`; this module only sends them over a `grpc.aio.Channel`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

from strata import _transfers
from strata._base import ClientBase
from strata._requests import PagedRpc, Rpc
from strata.aio_worker import AsyncQueueHandle
from strata.artifacts import Artifact, Progress, Source, Target
from strata.config import ClientConfig
from strata.follow import DEFAULT_RECONNECT_FOR, AsyncFollow

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase[grpc.aio.Channel]):
    """An asyncio connection to a Strata server; use it as an async context
    manager or `await close()` it. Use it from one event loop.

    Takes the arguments of `strata.Client` and has its methods, as coroutines.
    """

    def _open_channel(self, config: ClientConfig) -> grpc.aio.Channel:
        options = config.grpc_options()
        credentials = config.channel_credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(config.target, options=options)
        return grpc.aio.secure_channel(config.target, credentials, options=options)

    async def close(self) -> None:
        """Close the channel; calls after this fail."""
        await self._channel.close()

    def queue(self, name: str, *, namespace: str | None = None) -> AsyncQueueHandle:
        """The queue `name`, to work on its jobs: `await .work(handler)` or
        `async for job in .jobs(): ...` (see `strata.AsyncQueueHandle`)."""
        return AsyncQueueHandle(self, name, namespace=namespace)

    def follow(
        self,
        transcript_id: str,
        from_seq: int = 1,
        *,
        max_batch_bytes: int = 0,
        reconnect_for: float | None = DEFAULT_RECONNECT_FOR,
        namespace: str | None = None,
    ) -> AsyncFollow:
        """As `strata.Client.follow`, for `async for`."""
        return AsyncFollow(
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
    ) -> AsyncFollow:
        """As `strata.Client.read_transcript`, for `async for`."""
        return AsyncFollow(
            self,
            transcript_id,
            from_seq,
            follow=False,
            max_batch_bytes=max_batch_bytes,
            namespace=namespace,
        )

    async def upload(
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
        return await _transfers.upload_async(
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

    async def download(
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
        return await _transfers.download_async(
            self, id, target, offset=offset, limit=limit, namespace=namespace, progress=progress
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(self, rpc: Rpc[Any, T]) -> T:
        method, request, timeout, schedule = self._prepare(rpc)
        while True:
            try:
                response = await method(request, timeout=timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                await asyncio.sleep(schedule.backoff(err))
            else:
                return rpc.parse(response)

    async def _iterate(self, pages: PagedRpc[T]) -> AsyncIterator[T]:
        token = ""
        while True:
            page = await self._call(pages(token))
            for item in page.items:
                yield item
            token = page.next_page_token
            if not token:
                return
