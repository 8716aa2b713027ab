"""CacheService over a real channel on both shapes: the in-process LRU (SQLite
server) and Redis (PostgreSQL server) answer the same contract, TTL expiry included,
and every bad request gets its exact code and detail."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from strata.v1 import admin_pb2, cache_pb2, cache_pb2_grpc
from tests.conftest import Stubs
from tests.contract.helpers import (
    CALLER_FAULT_CODES,
    create,
    expect_error,
    get,
    raised_by,
    seconds,
    unique,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MAX_VALUE = 1024 * 1024
"""The default STRATA_CACHE_MAX_VALUE_BYTES."""


@pytest.fixture
def cache(stubs: Stubs) -> cache_pb2_grpc.CacheServiceStub:
    """A CacheService stub on this test's server."""
    return cache_pb2_grpc.CacheServiceStub(stubs.channel)


def cache_get(cache: Any, key: str, **fields: Any) -> cache_pb2.CacheServiceGetResponse:
    """Get."""
    return cache.Get(cache_pb2.CacheServiceGetRequest(key=key, **fields))


def cache_set(cache: Any, key: str, value: bytes, **fields: Any) -> None:
    """Set."""
    cache.Set(cache_pb2.CacheServiceSetRequest(key=key, value=value, **fields))


def cache_delete(cache: Any, key: str, **fields: Any) -> bool:
    """Delete; whether the key held a value."""
    return bool(cache.Delete(cache_pb2.CacheServiceDeleteRequest(key=key, **fields)).existed)


def test_set_get_delete(cache: Any) -> None:
    key = unique("k")
    assert not cache_get(cache, key).found
    value = bytes(range(256)) * 4  # any bytes, NUL included
    cache_set(cache, key, value)
    got = cache_get(cache, key)
    assert (got.found, got.value) == (True, value)
    cache_set(cache, key, b"second")
    assert cache_get(cache, key).value == b"second"
    assert cache_delete(cache, key)
    assert not cache_get(cache, key).found
    assert not cache_delete(cache, key)  # deleting a missing key is no error


def test_empty_value_is_a_value(cache: Any) -> None:
    key = unique("k")
    cache_set(cache, key, b"")
    got = cache_get(cache, key)
    assert (got.found, got.value) == (True, b"")


def test_namespaces_are_separate_key_spaces(cache: Any) -> None:
    key = unique("k")
    cache_set(cache, key, b"in a", namespace="tenant-a")
    cache_set(cache, key, b"in b", namespace="tenant-b")
    assert cache_get(cache, key, namespace="tenant-a").value == b"in a"
    assert cache_get(cache, key, namespace="tenant-b").value == b"in b"
    assert not cache_get(cache, key).found  # "default"
    assert cache_delete(cache, key, namespace="tenant-a")
    assert cache_get(cache, key, namespace="tenant-b").found


@pytest.mark.parametrize(
    "key", ["{tag}:with:colons", "spaces are fine", "ключ-🔑", "r:records/look-alike", "x" * 512]
)
def test_any_printable_key(cache: Any, key: str) -> None:
    key = key if len(key) == 512 else key + unique("-")
    cache_set(cache, key, b"v")
    assert cache_get(cache, key).value == b"v"
    assert cache_delete(cache, key)


def test_ttl_expiry(cache: Any) -> None:
    short, default = unique("short"), unique("default")
    cache_set(cache, short, b"soon gone", ttl=seconds(0.4))
    cache_set(cache, default, b"stays")  # the server default: 5 minutes
    assert cache_get(cache, short).found
    time.sleep(0.8)
    assert not cache_get(cache, short).found
    assert cache_get(cache, default).found
    # A later Set gives the key a fresh TTL.
    cache_set(cache, short, b"again", ttl=seconds(60))
    assert cache_get(cache, short).value == b"again"


def test_sub_millisecond_ttl_still_stores(cache: Any) -> None:
    key = unique("k")
    cache_set(cache, key, b"v", ttl=duration_pb2.Duration(nanos=1000))
    # Rounded up to 1 ms: set, then gone almost at once.
    time.sleep(0.05)
    assert not cache_get(cache, key).found


def test_cached_records_are_not_visible_as_cache_keys(
    cache: Any, stubs: Stubs, collection: str
) -> None:
    record = create(stubs, collection, "r1", {"secret": 1})
    get(stubs, collection, "r1")  # now in the record cache
    assert not cache_get(cache, f"r:{collection}/{record.id}").found
    cache_set(cache, f"r:{collection}/{record.id}", b"not a record")
    assert get(stubs, collection, "r1") == record


def test_server_info_names_the_cache(stubs: Stubs, shape: str) -> None:
    info = stubs.admin.GetServerInfo(admin_pb2.GetServerInfoRequest())
    assert info.cache_backend == {"sqlite": "memory", "postgres": "redis"}[shape]
    assert info.cache_stats.record_cache_enabled
    assert info.cache_stats.available


# --- bad input ---------------------------------------------------------------------


def _set(**fields: Any) -> Callable[[Any], Any]:
    fields.setdefault("key", "k")
    return lambda cache: cache.Set(cache_pb2.CacheServiceSetRequest(**fields))


def _get(**fields: Any) -> Callable[[Any], Any]:
    return lambda cache: cache.Get(cache_pb2.CacheServiceGetRequest(**fields))


def _delete(**fields: Any) -> Callable[[Any], Any]:
    return lambda cache: cache.Delete(cache_pb2.CacheServiceDeleteRequest(**fields))


BAD = {
    "get: empty key": (_get(key=""), "key", "key: is required"),
    "set: empty key": (_set(key=""), "key", "key: is required"),
    "delete: empty key": (_delete(key=""), "key", "key: is required"),
    "key over 512 bytes": (_get(key="é" * 257), "key", "at most 512 bytes"),
    "key with a newline": (_set(key="a\nb"), "key", "control characters"),
    "key with a NUL": (_delete(key="a\x00b"), "key", "control characters"),
    "bad namespace": (_get(key="k", namespace="Bad NS"), "namespace", "namespace: must be"),
    "negative ttl": (_set(ttl=duration_pb2.Duration(seconds=-1)), "ttl", "must be positive"),
    "zero ttl": (_set(ttl=duration_pb2.Duration()), "ttl", "must be positive"),
    "ttl over 30 days": (
        _set(ttl=duration_pb2.Duration(seconds=31 * 86400)),
        "ttl",
        "at most 30 days",
    ),
    "ttl with mixed signs": (
        _set(ttl=duration_pb2.Duration(seconds=1, nanos=-5)),
        "ttl",
        "nanos of the sign of seconds",
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_input(cache: Any, case: tuple[Callable[[Any], Any], str, str]) -> None:
    call, field, detail = case
    expect_error(lambda: call(cache), INVALID, "INVALID_ARGUMENT", field)
    assert detail in raised_by(lambda: call(cache)).details()


def test_oversized_value_is_resource_exhausted(cache: Any) -> None:
    key = unique("big")
    _, _ = expect_error(
        lambda: cache_set(cache, key, b"x" * (MAX_VALUE + 1)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_LARGE",
        size=str(MAX_VALUE + 1),
        limit=str(MAX_VALUE),
    )
    assert not cache_get(cache, key).found
    cache_set(cache, key, b"x" * MAX_VALUE)  # exactly the limit is fine
    assert len(cache_get(cache, key).value) == MAX_VALUE


def test_no_bad_input_is_a_server_fault(cache: Any) -> None:
    for call, _, _ in BAD.values():
        assert raised_by(lambda call=call: call(cache)).code() not in CALLER_FAULT_CODES
