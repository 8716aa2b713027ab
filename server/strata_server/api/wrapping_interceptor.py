"""The base of the server's interceptors that wrap every method's handler
(api/decoding.py, api/auth.py).

grpc.aio asks an interceptor for a method's handler on every call. Building a fresh
wrapper each time would cost every call an allocation of closures and a handler, so
each method's wrapper is built once and reused for as long as grpc hands over the
same inner handler.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps each method's handler once (`wrap`)."""

    def __init__(self) -> None:
        # One entry per method the server knows: bounded by the services.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        """The method's handler, wrapped once per method (then reused)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @abstractmethod
    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler` of `method` (`/package.Service/Method`) with this interceptor's
        behaviour around it."""
