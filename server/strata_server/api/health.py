"""grpc.health.v1.Health with `List`: grpcio-health-checking's asyncio servicer
answers Check and Watch but not List (the method came to the proto after it), so
`grpcurl ... grpc.health.v1.Health/List` got UNIMPLEMENTED. This adds List over the
statuses the server sets, kept here through the servicer's public `set` and
`enter_graceful_shutdown` rather than read from its private fields."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health, health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]  # untyped library
    """The library's servicer, remembering what it was told for `List`."""

    def __init__(self) -> None:
        super().__init__()
        self._listed: dict[str, health_pb2.HealthCheckResponse.ServingStatus] = {"": SERVING}
        self._stopping = False

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        """Set a service's status, as the library does (ignored once shutting down)."""
        await super().set(service, status)
        if not self._stopping:
            self._listed[service] = status

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on, in List as in Check."""
        await super().enter_graceful_shutdown()
        self._stopping = True
        self._listed = dict.fromkeys(self._listed, NOT_SERVING)

    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        """Every service the server reports on, with its status."""
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._listed.items()
            }
        )
