"""Redis spoken directly (`storage.redis_wire`), on real redis-server processes:
the cache's pipelined GETs match replies to their GETs, obey the URL's settings
(password, database, unix socket, TLS), and fail as `Unavailable` in a way the
next GET recovers from; the events' pub/sub survives a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from redis.asyncio import Redis

from strata_server.core.errors import Unavailable
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.cache import RedisCache
from strata_server.storage.redis.events import RedisEvents
from tests.contract.helpers import unique
from tests.support.ports import free_port
from tests.support.redis import RedisServer


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own, free to be paused, killed or locked."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def cache_at(url: str, seconds: float = 1.0) -> AsyncIterator[tuple[Redis, RedisCache]]:
    """A Redis client for `url` (`seconds`: its timeout) and the cache over it, both
    closed afterwards."""
    client = redis_client.connect(url, timeout=seconds)
    cache = RedisCache(client)
    try:
        yield client, cache
    finally:
        await cache.close()
        await redis_client.close(client)


async def test_concurrent_gets_each_get_their_own_reply(redis: RedisServer) -> None:
    ns = unique("ns")
    async with cache_at(redis.url) as (_, cache):
        for i in range(0, 1000, 2):  # odd keys stay empty
            await cache.set(ns, f"k:{i}", f"value {i}".encode(), 60)
        got = await asyncio.gather(*(cache.get(ns, f"k:{i}") for i in range(1000)))
        assert got == [f"value {i}".encode() if i % 2 == 0 else None for i in range(1000)]


async def test_the_urls_password_and_database_hold(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", "--requirepass", "s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        async with cache_at(url) as (_, cache):
            await cache.set("ns", "k:a", b"in db 3", 60)
            assert await cache.get("ns", "k:a") == b"in db 3"
            other = redis_client.connect(f"redis://:s3cret@127.0.0.1:{server.port}/0")
            assert await RedisCache(other).get("ns", "k:a") is None  # not in db 0
            await redis_client.close(other)
        wrong = redis_client.connect(f"redis://:wrong@127.0.0.1:{server.port}/3")
        try:
            with pytest.raises(Unavailable, match=r"refused a command: .*WRONGPASS"):
                await RedisCache(wrong).get("ns", "k:a")
        finally:
            await redis_client.close(wrong)


async def test_a_unix_socket_url(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with RedisServer(tmp_path / "redis", "--unixsocket", str(path)):
        async with cache_at(f"unix://{path}?db=2") as (_, cache):
            await cache.set("ns", "k:a", b"over a socket", 60)
            assert await cache.get("ns", "k:a") == b"over a socket"


@pytest.mark.parametrize("failure", ["restart", "silence"])
async def test_a_failed_get_is_unavailable_and_the_next_one_reconnects(
    own_redis: RedisServer, failure: str
) -> None:
    async with cache_at(own_redis.url, 0.3) as (client, cache):
        await cache.set("ns", "k:a", b"v", 60)
        assert await cache.get("ns", "k:a") == b"v"
        if failure == "restart":
            own_redis.kill()
            expected = "cannot be reached: .*closed"
        else:
            await client.execute_command("CLIENT", "PAUSE", "1000", "ALL")  # Redis goes quiet
            expected = "cannot be reached: Redis did not answer within the timeout"
        with pytest.raises(Unavailable, match=expected):
            await cache.get("ns", "k:a")
        if failure == "restart":
            own_redis.start()  # same port, and empty: nothing was saved
            assert await cache.get("ns", "k:a") is None
            await cache.set("ns", "k:a", b"v", 60)
        else:
            await asyncio.sleep(1.0)  # the pause is over
        assert await cache.get("ns", "k:a") == b"v"


async def test_tls_with_the_urls_certificate_authority(tmp_path: Path) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem"))
    authority.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-auth-clients", "no"]
    args += ["--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file)]
    with RedisServer(tmp_path / "redis", *args, "--tls-ca-cert-file", str(ca_file)):
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_file}"
        client = redis_client.connect(url)
        cache = RedisCache(client)
        first, second = await RedisEvents.open(client), await RedisEvents.open(client)
        try:
            await cache.set("ns", "k:a", b"over TLS", 60)
            assert await cache.get("ns", "k:a") == b"over TLS"
            with second.listen("queue:ns:q") as heard:
                first.notify("queue:ns:q")
                assert await heard.wait(5)
        finally:
            await first.close()
            await second.close()
            await cache.close()
            await redis_client.close(client)
        # A certificate no one vouched for is refused.
        untrusted = redis_client.connect(f"rediss://127.0.0.1:{tls_port}/0")
        try:
            with pytest.raises(Unavailable, match="cannot be reached"):
                await RedisCache(untrusted).get("ns", "k:a")
        finally:
            await redis_client.close(untrusted)


async def test_events_subscribe_again_after_a_redis_restart(own_redis: RedisServer) -> None:
    first = await RedisEvents.open(own_redis.url)
    second = await RedisEvents.open(own_redis.url)
    try:
        with second.listen("queue:ns:q") as heard:
            first.notify("queue:ns:q")
            assert await heard.wait(5)
            own_redis.kill()
            first.notify("queue:ns:q")  # dropped, without raising or blocking
            await asyncio.sleep(0.2)
            await heard.wait(0)  # forget whatever the outage did
            own_redis.start()
            deadline = asyncio.get_running_loop().time() + 15
            while True:  # both reconnect once their backoff lets them
                first.notify("queue:ns:q")
                if await heard.wait(0.5):
                    break
                assert asyncio.get_running_loop().time() < deadline, "no wakeups after restart"
    finally:
        await first.close()
        await second.close()
