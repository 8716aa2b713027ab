"""Calls described without doing any I/O: what the transport sends.

The call builders of `strata._record_requests`, `strata._queue_requests`, ...
each return one of these: an `Rpc` (one request, one response), a `PagedRpc`
(a List-style call, one `Rpc` per page) or a `StreamRpc` (a stream either way).
A description names the stub method, how to build the request once the
namespace is known, how to read the response and whether a retry is safe;
`strata._transport` is the only code that sends one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar

from google.protobuf.message import Message

RespT = TypeVar("RespT")
OutT = TypeVar("OutT")
ItemT = TypeVar("ItemT")
MessageT = TypeVar("MessageT", bound=Message)

Service = Literal[
    "records", "transactions", "admin", "queue", "transcripts", "cache", "artifacts", "search"
]
"""Which generated stub serves a call."""


@dataclass(frozen=True, slots=True)
class Rpc(Generic[RespT, OutT]):
    """One unary call, ready to send."""

    service: Service
    """The stub that has the method."""
    method: str
    """The stub's method, e.g. "GetRecord"."""
    build: Callable[[str], Message]
    """The request for a namespace."""
    parse: Callable[[RespT], OutT]
    """The caller's result from the response."""
    idempotent: bool
    """Whether sending the request twice has the effect of sending it once, so
    that it may be retried after UNAVAILABLE."""
    namespace: str | None = None
    """The caller's namespace; None means the client's default."""
    wait: float = 0.0
    """Seconds the server may hold the call before it answers (a long poll),
    added to the client's timeout to make the call's deadline."""

    def request(self, default_namespace: str) -> Message:
        """The request to send when the client's namespace is `default_namespace`."""
        return self.build(self.namespace or default_namespace)


@dataclass(frozen=True, slots=True)
class StreamRpc(Generic[RespT, OutT]):
    """A call that streams: its responses (server streaming), its requests
    (client streaming), or both. Never retried and without a deadline: a stream
    lasts as long as its caller reads or sends, and the caller knows where it
    stands if it must resume (`strata.follow` does)."""

    service: Service
    """The stub that has the method."""
    method: str
    """The stub's method, e.g. "ReadTranscript"."""
    build: Callable[[str], Any]
    """The request for a namespace: a message, or (client streaming) an
    iterator of messages, an async one on the asyncio client."""
    parse: Callable[[RespT], OutT]
    """The caller's value from each response message."""
    namespace: str | None = None
    """The caller's namespace; None means the client's default."""

    def request(self, default_namespace: str) -> Any:
        """The request (or requests) to send when the client's namespace is
        `default_namespace`."""
        return self.build(self.namespace or default_namespace)


def namespaced_call(
    service: Service,
    method: str,
    fields: Message,
    parse: Callable[[RespT], OutT],
    namespace: str | None,
    idempotent: bool,
    wait: float = 0.0,
) -> Rpc[RespT, OutT]:
    """A call whose request is `fields` in the caller's namespace (`in_namespace`)."""
    return Rpc(
        service,
        method,
        lambda ns: in_namespace(fields, ns),
        parse,
        idempotent=idempotent,
        namespace=namespace,
        wait=wait,
    )


def in_namespace(fields: MessageT, namespace: str) -> MessageT:
    """A request of `fields`' type holding `fields`, in `namespace` unless `fields`
    names one itself (or its type has no namespace: server info, tokens). The
    protobuf stubs' Message can't say it has a `namespace` field, hence the one
    untyped assignment."""
    request = type(fields)()
    if "namespace" in request.DESCRIPTOR.fields_by_name:
        named: Any = request
        named.namespace = namespace
    request.MergeFrom(fields)
    return request


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """One page of a List-style call."""

    items: list[ItemT]
    """The page's results."""
    next_page_token: str
    """Token of the next page; empty on the last one."""


PagedRpc: TypeAlias = Callable[[str], Rpc[Any, Page[ItemT]]]
"""A List-style call: given a page token ("" for the first), the call for that page."""


def paged_call(
    method: str,
    query: MessageT,
    items: Callable[[Any], list[ItemT]],
    namespace: str | None,
    service: Service = "records",
) -> PagedRpc[ItemT]:
    """A List-style call: `query` is its request without namespace and page
    token, `items` reads a page's results."""

    def page(token: str) -> Rpc[Any, Page[ItemT]]:
        def build(ns: str) -> Message:
            request = in_namespace(query, ns)
            named: Any = request
            named.page_token = token
            return request

        return Rpc(
            service,
            method,
            build,
            lambda response: Page(items(response), response.next_page_token),
            idempotent=True,
            namespace=namespace,
        )

    return page


class Pages(Generic[ItemT]):
    """Where an iteration over a List-style call stands: the call of the next
    page, until a page comes back without a next token. Both clients iterate
    with it, each sending the calls its own way."""

    def __init__(self, paged: PagedRpc[ItemT]) -> None:
        self._paged = paged
        self._token: str | None = ""

    def next_call(self) -> Rpc[Any, Page[ItemT]] | None:
        """The call of the next page; None after the last."""
        return None if self._token is None else self._paged(self._token)

    def take(self, page: Page[ItemT]) -> list[ItemT]:
        """The items of the page just fetched."""
        self._token = page.next_page_token or None
        return page.items
