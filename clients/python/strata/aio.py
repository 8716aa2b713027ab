"""The asyncio client, on `grpc.aio`.

    async with strata.AsyncClient("127.0.0.1:50051") as client:
        record = await client.get_record("tickets", "t-1")
        async for ticket in client.list_records("tickets", filter='data.state = "open"'):
            ...

It has the methods of `strata.Client` as coroutines, and the List-style ones
(`list_records`, `search_records`, `list_jobs`, ...) as async iterators. They are
declared in `strata._client_base.ClientBase`; this module only runs them on a
`strata._transport.AsyncTransport`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

from strata._client_base import ClientBase
from strata._machines import Machine, arun
from strata._rpc import PagedRpc, Pages, Rpc
from strata._transport import AsyncTransport
from strata.aio_worker import AsyncQueueHandle
from strata.config import ClientConfig

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientBase[AsyncTransport]):
    """An asyncio connection to a Strata server; use it as an async context
    manager or `await close()` it. Use it from one event loop.

    Takes the arguments of `strata.Client` and has its methods, as coroutines.
    """

    def _open_transport(self, config: ClientConfig) -> AsyncTransport:
        return AsyncTransport(config)

    async def close(self) -> None:
        """Close the channel; calls after this fail."""
        await self._transport.close()

    def queue(self, name: str, *, namespace: str | None = None) -> AsyncQueueHandle:
        """The queue `name`, to work on its jobs: `await .work(handler)` or
        `async for job in .jobs(): ...` (see `strata.AsyncQueueHandle`)."""
        return AsyncQueueHandle(self._transport, name, namespace=namespace)

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
        return await self._transport.unary(rpc)

    async def _iterate(self, paged: PagedRpc[T]) -> AsyncIterator[T]:
        pages = Pages(paged)
        while (rpc := pages.next_call()) is not None:
            for item in pages.take(await self._transport.unary(rpc)):
                yield item

    async def _run(self, steps: Machine[T]) -> T:
        return await arun(self._transport, steps)
