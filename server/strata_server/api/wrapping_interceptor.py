"""The base of the server's one interceptor (api/decoding.py; api/auth.py adds the
caller's checks to it).

grpc.aio asks an interceptor for a method's handler on every call. Building a fresh
wrapper each time would cost every call an allocation of closures and a handler, so
each method's wrapper is built once and reused for as long as grpc hands over the
same inner handler.

Each interceptor is one more stage of grpc.aio's own per-call pipeline (a partial
and two coroutines before the handler is found), so the server runs exactly one,
whatever its auth mode: a subclass that must look at the call's metadata does so
through `identifier`, in this same stage, rather than as an interceptor of its own.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Metadata: TypeAlias = Iterable[tuple[str, str | bytes]]
Identify: TypeAlias = Callable[[Metadata], Awaitable[None] | None]
"""A method's look at the call's metadata while grpc finds its handler: None when
done at once, else what to await."""


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps each method's handler once (`wrap`) and may
    look at each call's metadata (`identifier`)."""

    def __init__(self) -> None:
        # One entry per method the server knows: bounded by the services.
        self._wrapped: dict[str, tuple[Handler, Handler, Identify | None]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The method's handler, wrapped once per method (then reused); its
        `identifier`, if any, sees the metadata grpc has gathered for the lookup."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = (handler, self.wrap(method, handler), self.identifier(method))
            self._wrapped[method] = known
        identify = known[2]
        if identify is not None:
            pending = identify(handler_call_details.invocation_metadata)
            if pending is not None:
                await pending
        return known[1]

    @abstractmethod
    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method` (`/package.Service/Method`) with this interceptor's
        behaviour around it."""

    def identifier(self, method: str) -> Identify | None:
        """What looks at each call of `method`'s metadata before its handler runs
        (None: nothing)."""
        return None
