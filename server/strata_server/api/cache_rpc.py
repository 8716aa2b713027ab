"""CacheService: validates requests and hands them to the Cache port.

User keys live under `k:` in their namespace, apart from the record cache's `r:`
keys, so no caller can read or clobber a cached record through this service.
"""

from __future__ import annotations

from dataclasses import KW_ONLY
from typing import Any

import grpc
from google.protobuf import duration_pb2, empty_pb2

from strata.v1 import cache_pb2, cache_pb2_grpc
from strata_server.api.status_codes import rpcs
from strata_server.core import errors, validation
from strata_server.core.values import frozen
from strata_server.storage.ports import Cache

Context = grpc.aio.ServicerContext[Any, Any]
KEY_PREFIX = "k:"


def _seconds(value: duration_pb2.Duration, present: bool) -> float | None:
    if not present:
        return None
    if not -999_999_999 <= value.nanos <= 999_999_999 or (
        value.seconds * value.nanos < 0  # the signs of seconds and nanos must agree
    ):
        raise errors.InvalidArgument.field("ttl", "is not a valid duration")
    return value.seconds + value.nanos / 1e9


def _key(request: Any) -> tuple[str, str]:
    """The namespace a Get, Set or Delete names, and its key as stored (under `k:`)."""
    return validation.namespace(request.namespace), KEY_PREFIX + validation.cache_key(request.key)


@rpcs(cache_pb2.DESCRIPTOR.services_by_name["CacheService"])
@frozen
class CacheService(cache_pb2_grpc.CacheServiceServicer):
    """gRPC face of a Cache; `cache` None means this server has none it could keep
    consistent (several processes, no Redis), and every call says so."""

    cache: Cache | None
    _: KW_ONLY
    max_value_bytes: int
    default_ttl: float

    def _backend(self) -> Cache:
        if self.cache is None:
            raise errors.FailedPrecondition(
                "this server has no cache: several processes may serve this data, so an "
                "in-process cache could disagree between them; set STRATA_REDIS_URL",
                reason="CACHE_NOT_CONFIGURED",
            )
        return self.cache

    async def Get(
        self, request: cache_pb2.CacheServiceGetRequest, context: Context
    ) -> cache_pb2.CacheServiceGetResponse:
        namespace, key = _key(request)
        value = await self._backend().get(namespace, key)
        if value is None:
            return cache_pb2.CacheServiceGetResponse(found=False)
        return cache_pb2.CacheServiceGetResponse(found=True, value=value)

    async def Set(
        self, request: cache_pb2.CacheServiceSetRequest, context: Context
    ) -> empty_pb2.Empty:
        namespace, key = _key(request)
        ttl = validation.cache_ttl(_seconds(request.ttl, request.HasField("ttl")), self.default_ttl)
        size = len(request.value)
        if size > self.max_value_bytes:
            raise errors.TooLarge(
                f"value is {size} bytes, over the {self.max_value_bytes}-byte limit "
                "(STRATA_CACHE_MAX_VALUE_BYTES)",
                metadata={"size": str(size), "limit": str(self.max_value_bytes)},
            )
        await self._backend().set(namespace, key, request.value, ttl)
        return empty_pb2.Empty()

    async def Delete(
        self, request: cache_pb2.CacheServiceDeleteRequest, context: Context
    ) -> cache_pb2.CacheServiceDeleteResponse:
        namespace, key = _key(request)
        removed = await self._backend().delete(namespace, [key])
        return cache_pb2.CacheServiceDeleteResponse(existed=removed > 0)
