"""The blocking client.

    with strata.Client("127.0.0.1:50051", namespace="acme") as client:
        record = client.create_record("tickets", {"title": "Printer on fire"})

Its methods are declared in `strata._client_base.ClientBase`; this module only
runs them on a blocking `strata._transport.Transport`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

from strata._client_base import ClientBase
from strata._machines import Machine, run
from strata._rpc import PagedRpc, Pages, Rpc
from strata._transport import Transport
from strata.config import ClientConfig
from strata.worker import QueueHandle

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientBase[Transport]):
    """A blocking connection to a Strata server; use it as a context manager or
    `close()` it. Safe to share between threads.

    `Client(target=None, *, config=None, namespace=None, timeout=None, actor=None,
    retry=None, token=None, tls=None)`: the arguments given win over the fields
    of `config`; a token and TLS not given come from $STRATA_TOKEN and
    $STRATA_TLS_CA when set. Every method but `server_info` and the token calls
    takes `namespace=` to override the default for one call. Failed calls raise
    `strata.StrataError` subclasses.
    """

    def _open_transport(self, config: ClientConfig) -> Transport:
        return Transport(config)

    def close(self) -> None:
        """Close the channel; calls after this fail."""
        self._transport.close()

    def queue(self, name: str, *, namespace: str | None = None) -> QueueHandle:
        """The queue `name`, to work on its jobs: `.work(handler)` or
        `for job in .jobs(): ...` (see `strata.QueueHandle`)."""
        return QueueHandle(self._transport, name, namespace=namespace)

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
        return self._transport.unary(rpc)

    def _iterate(self, paged: PagedRpc[T]) -> Iterator[T]:
        pages = Pages(paged)
        while (rpc := pages.next_call()) is not None:
            yield from pages.take(self._transport.unary(rpc))

    def _run(self, steps: Machine[T]) -> T:
        return run(self._transport, steps)
