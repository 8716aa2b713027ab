"""api/health.HealthServicer: List follows set and graceful shutdown as Check does."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2

from strata_server.api.health import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _statuses(servicer: HealthServicer) -> dict[str, int]:
    listed = asyncio.run(servicer.List(health_pb2.HealthListRequest(), None))
    return {name: response.status for name, response in listed.statuses.items()}


def test_list_follows_set_then_shutdown() -> None:
    servicer = HealthServicer()
    assert _statuses(servicer) == {"": SERVING}

    async def serve_then_stop() -> None:
        await servicer.set("strata.v1.RecordService", SERVING)
        await servicer.set("strata.v1.QueueService", NOT_SERVING)
        assert _listed(await servicer.List(health_pb2.HealthListRequest(), None)) == {
            "": SERVING,
            "strata.v1.RecordService": SERVING,
            "strata.v1.QueueService": NOT_SERVING,
        }
        await servicer.enter_graceful_shutdown()
        await servicer.set("strata.v1.RecordService", SERVING)  # ignored, as Check ignores it

    asyncio.run(serve_then_stop())
    assert _statuses(servicer) == dict.fromkeys(
        ("", "strata.v1.RecordService", "strata.v1.QueueService"), NOT_SERVING
    )


def _listed(response: health_pb2.HealthListResponse) -> dict[str, int]:
    return {name: status.status for name, status in response.statuses.items()}
