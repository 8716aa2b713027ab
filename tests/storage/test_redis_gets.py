"""The pipelined GET path of the Redis cache (`storage.redis_gets`) on real
redis-server processes: replies matched to their GETs, the URL's settings obeyed,
and every failure an `Unavailable` that the next GET recovers from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strata_server.core.errors import Unavailable
from strata_server.storage import redis_client
from strata_server.storage.cache.redis import RedisCache
from strata_server.storage.redis_gets import PipelinedGets
from tests.contract.helpers import unique
from tests.support.redis import RedisServer


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own, free to be paused, killed or locked."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_concurrent_gets_each_get_their_own_reply(redis: RedisServer) -> None:
    client = redis_client.connect(redis.url)
    cache = RedisCache(client)
    ns = unique("ns")
    try:
        for i in range(0, 1000, 2):  # odd keys stay empty
            await cache.set(ns, f"k:{i}", f"value {i}".encode(), 60)
        got = await asyncio.gather(*(cache.get(ns, f"k:{i}") for i in range(1000)))
        assert got == [f"value {i}".encode() if i % 2 == 0 else None for i in range(1000)]
    finally:
        await cache.close()
        await redis_client.close(client)


async def test_the_urls_password_and_database_hold(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", "--requirepass", "s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        client = redis_client.connect(url)
        cache = RedisCache(client)
        try:
            await cache.set("ns", "k:a", b"in db 3", 60)
            assert await cache.get("ns", "k:a") == b"in db 3"
            other = redis_client.connect(f"redis://:s3cret@127.0.0.1:{server.port}/0")
            assert await RedisCache(other).get("ns", "k:a") is None  # not in db 0
            await redis_client.close(other)
        finally:
            await cache.close()
            await redis_client.close(client)
        wrong = redis_client.connect(f"redis://:wrong@127.0.0.1:{server.port}/3")
        try:
            with pytest.raises(Unavailable, match=r"refused a command: .*WRONGPASS"):
                await RedisCache(wrong).get("ns", "k:a")
        finally:
            await redis_client.close(wrong)


async def test_a_unix_socket_url(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with RedisServer(tmp_path / "redis", "--unixsocket", str(path)):
        client = redis_client.connect(f"unix://{path}?db=2")
        cache = RedisCache(client)
        try:
            await cache.set("ns", "k:a", b"over a socket", 60)
            assert await cache.get("ns", "k:a") == b"over a socket"
        finally:
            await cache.close()
            await redis_client.close(client)


async def test_a_restart_fails_the_get_and_the_next_one_reconnects(
    own_redis: RedisServer,
) -> None:
    client = redis_client.connect(own_redis.url, timeout=0.5)
    cache = RedisCache(client)
    try:
        await cache.set("ns", "k:a", b"before", 60)
        assert await cache.get("ns", "k:a") == b"before"
        own_redis.kill()
        with pytest.raises(Unavailable, match="cannot be reached"):
            await cache.get("ns", "k:a")
        own_redis.start()  # same port, empty: nothing was saved
        assert await cache.get("ns", "k:a") is None
        await cache.set("ns", "k:a", b"after", 60)
        assert await cache.get("ns", "k:a") == b"after"
    finally:
        await cache.close()
        await redis_client.close(client)


async def test_an_unanswered_get_times_out_and_the_next_one_reconnects(
    own_redis: RedisServer,
) -> None:
    client = redis_client.connect(own_redis.url, timeout=0.3)
    cache = RedisCache(client)
    try:
        await cache.set("ns", "k:a", b"v", 60)
        assert await cache.get("ns", "k:a") == b"v"
        await client.execute_command("CLIENT", "PAUSE", "1000", "ALL")  # Redis goes quiet
        with pytest.raises(Unavailable, match="did not answer within the timeout"):
            await cache.get("ns", "k:a")
        await asyncio.sleep(1.0)
        assert await cache.get("ns", "k:a") == b"v"
    finally:
        await cache.close()
        await redis_client.close(client)


def test_tls_urls_keep_redis_pys_get() -> None:
    assert PipelinedGets.for_client(redis_client.connect("rediss://127.0.0.1:1/0")) is None
    assert PipelinedGets.for_client(redis_client.connect("redis://127.0.0.1:1/0")) is not None
