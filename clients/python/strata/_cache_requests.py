"""The cache's calls (CacheService), described without doing any I/O.

Each builder is one method of `Client` and `AsyncClient` (`cache_get`,
`cache_set`, `cache_delete`). All three are retried after UNAVAILABLE: a get and
a delete are idempotent, and setting the same value twice sets it once.
"""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import empty_pb2

from strata._convert import duration_from_timedelta
from strata._rpc import Rpc
from strata.v1 import cache_pb2


def cache_get(
    key: str, *, namespace: str | None = None
) -> Rpc[cache_pb2.CacheServiceGetResponse, bytes | None]:
    """The bytes kept under `key`, or None when it holds nothing (never set,
    expired, evicted or deleted: a cache may drop entries early)."""
    return Rpc(
        "cache",
        "Get",
        lambda ns: cache_pb2.CacheServiceGetRequest(namespace=ns, key=key),
        lambda response: response.value if response.found else None,
        idempotent=True,
        namespace=namespace,
    )


def cache_set(
    key: str,
    value: bytes,
    *,
    ttl: timedelta | None = None,
    namespace: str | None = None,
) -> Rpc[empty_pb2.Empty, None]:
    """Keep `value` under `key` for `ttl` (None: the server's default, 5 minutes),
    replacing what it held."""
    duration = duration_from_timedelta(ttl, "ttl")

    def build(ns: str) -> cache_pb2.CacheServiceSetRequest:
        request = cache_pb2.CacheServiceSetRequest(namespace=ns, key=key, value=value)
        if duration is not None:
            request.ttl.CopyFrom(duration)
        return request

    return Rpc("cache", "Set", build, lambda _: None, idempotent=True, namespace=namespace)


def cache_delete(
    key: str, *, namespace: str | None = None
) -> Rpc[cache_pb2.CacheServiceDeleteResponse, bool]:
    """Remove `key`; whether it held a value."""
    return Rpc(
        "cache",
        "Delete",
        lambda ns: cache_pb2.CacheServiceDeleteRequest(namespace=ns, key=key),
        lambda response: response.existed,
        idempotent=True,
        namespace=namespace,
    )
