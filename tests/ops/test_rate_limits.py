"""Request rates per token over real channels: the auth interceptor (api/auth.py)
applying each limiter adapter, on real servicers.

The in-process servers authenticate a bearer token against a table of principals
the test makes (the token store has tests of its own), so a test can give each
token the rate it needs. The two "replicas" of the production shape are two
grpc.aio servers with their own Redis clients on one Redis.
`test_two_server_processes_share_a_token_bucket` is the end-to-end form: two
`strata serve` processes with STRATA_AUTH=token on one PostgreSQL and Redis, and a
token from `strata token create`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from strata.v1 import records_pb2, records_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc
from strata_server.api.auth import AuthInterceptor
from strata_server.api.records_rpc import RecordService
from strata_server.api.transcripts_rpc import TranscriptService
from strata_server.api.transcripts_rpc import add_to_server as add_transcript_service
from strata_server.core.access_rules import ALL_NAMESPACES, Principal, Role
from strata_server.core.errors import Unauthenticated
from strata_server.core.paging import PageTokens
from strata_server.core.rate_rules import RateDefaults
from strata_server.services.archive_service import Archiver
from strata_server.services.records_service import Records
from strata_server.services.transcripts_service import Transcripts
from strata_server.storage import migrations
from strata_server.storage.composite import Storage
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.memory.rates import LocalRateLimiter
from strata_server.storage.ports import RateLimiter
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.rates import RedisRateLimiter
from strata_server.storage.sqlite import open_sqlite
from tests.contract.helpers import unique
from tests.ops.test_migrations import strata

DEFAULTS = RateDefaults(per_second=0.0, burst=0)
PAGE_TOKENS = PageTokens(b"rate limit tests key")


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {name}"),)


async def serve(
    database: Storage,
    limiter: RateLimiter,
    principals: dict[str, Principal],
    *,
    anonymous: bool = False,
) -> tuple[grpc.aio.Server, str]:
    """A grpc.aio server with real record and transcript servicers and health,
    behind the auth interceptor (tokens are the principals' names; with
    `anonymous`, as under --auth none, nobody needs one)."""

    async def authenticate(secret: str) -> Principal:
        if secret not in principals:
            raise Unauthenticated("unknown token")
        return principals[secret]

    interceptor = AuthInterceptor(None if anonymous else authenticate, limiter=limiter)
    server = grpc.aio.server(interceptors=[interceptor])
    events = LocalEvents()
    records_pb2_grpc.add_RecordServiceServicer_to_server(
        RecordService(Records(database.records, events), 1 << 20, tokens=PAGE_TOKENS), server
    )
    add_transcript_service(
        TranscriptService(
            Transcripts(database.transcripts, events, heartbeat_seconds=5),
            # No blob store: these tests never archive or restore.
            Archiver(database.transcripts, database.archive, None, database.artifacts),  # type: ignore[arg-type]
            max_entry_bytes=1 << 20,
            tokens=PAGE_TOKENS,
        ),
        server,
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(params=["local", "redis"])
async def replicas(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Callable[[int], Awaitable[list[str]]], dict[str, Principal]]]:
    """Starts `n` servers sharing one database: with in-process buckets (only ever
    one server: the embedded shape has one process) or buckets in Redis."""
    principals: dict[str, Principal] = {}
    async with AsyncExitStack() as stack:
        database = await open_sqlite(
            ":memory:", max_record_bytes=1 << 20, schema_sql=migrations.memory_schema()
        )
        stack.push_async_callback(database.close)

        async def start(n: int) -> list[str]:
            targets = []
            for _ in range(n):
                if request.param == "local":
                    limiter: RateLimiter = LocalRateLimiter(DEFAULTS)
                else:
                    client = redis_client.connect(request.getfixturevalue("redis").url)
                    stack.push_async_callback(redis_client.close, client)
                    limiter = RedisRateLimiter(client, DEFAULTS)
                server, target = await serve(database, limiter, principals)
                stack.push_async_callback(server.stop, None)
                targets.append(target)
            return targets

        yield start, principals


def token(principals: dict[str, Principal], rate: float, burst: int) -> str:
    name = unique("token")
    principals[name] = Principal(
        name, Role.WRITER, frozenset({ALL_NAMESPACES}), rate_limit=rate, burst=burst
    )
    return name


async def get_record(target: str, name: str | None) -> grpc.StatusCode:
    """GetRecord of a record that is not there: NOT_FOUND when let through."""
    metadata = () if name is None else bearer(name)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        try:
            await stub.GetRecord(
                records_pb2.GetRecordRequest(collection="c", id="nothing"), metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                assert_rate_limited(error, name or "")
            return error.code()
    return grpc.StatusCode.OK


def assert_rate_limited(error: grpc.aio.AioRpcError, name: str) -> float:
    """RESOURCE_EXHAUSTED with ErrorInfo RATE_LIMITED and RetryInfo; the delay."""
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    kinds = set()
    for detail in status.details:
        for message in (info, retry):
            if detail.Is(message.DESCRIPTOR):
                detail.Unpack(message)
                kinds.add(type(message).__name__)
    assert kinds == {"ErrorInfo", "RetryInfo"}, status
    assert info.reason == "RATE_LIMITED" and info.metadata["principal"] == name
    delay = retry.retry_delay.ToTimedelta().total_seconds()
    assert 0 < delay <= 1.0  # at most one interval at 1 request per second
    return delay


async def test_a_token_over_its_rate_is_refused_with_retry_info(replicas) -> None:
    start, principals = replicas
    [target] = await start(1)
    name = token(principals, rate=1.0, burst=3)
    codes = [await get_record(target, name) for _ in range(4)]
    assert codes == [grpc.StatusCode.NOT_FOUND] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED]

    # Streams count once, when they open; health checks are never limited.
    async with grpc.aio.insecure_channel(target) as channel:
        reads = transcripts_pb2_grpc.TranscriptServiceStub(channel).ReadTranscript(
            transcripts_pb2.ReadTranscriptRequest(id="t"), metadata=bearer(name)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in reads:
                pass
        assert_rate_limited(refused.value, name)
        checked = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=bearer(name)
        )
        assert checked.status == health_pb2.HealthCheckResponse.SERVING


async def test_other_tokens_and_anonymous_calls_are_not_held_back(replicas) -> None:
    start, principals = replicas
    [target] = await start(1)
    busy, other = token(principals, rate=1.0, burst=1), token(principals, rate=1.0, burst=1)
    assert await get_record(target, busy) == grpc.StatusCode.NOT_FOUND
    assert await get_record(target, busy) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await get_record(target, other) == grpc.StatusCode.NOT_FOUND


async def test_anonymous_calls_are_never_limited(tmp_path) -> None:
    """Under --auth none every call is anonymous, and none is limited, even with a
    server-wide default rate."""
    database = await open_sqlite(
        ":memory:", max_record_bytes=1 << 20, schema_sql=migrations.memory_schema()
    )
    try:
        strict = LocalRateLimiter(RateDefaults(per_second=1.0, burst=1))
        server, target = await serve(database, strict, {}, anonymous=True)
        try:
            codes = {await get_record(target, None) for _ in range(20)}
            assert codes == {grpc.StatusCode.NOT_FOUND}
        finally:
            await server.stop(None)
    finally:
        await database.close()


async def test_replicas_share_the_bucket(request, redis) -> None:
    principals: dict[str, Principal] = {}
    async with AsyncExitStack() as stack:
        database = await open_sqlite(
            ":memory:", max_record_bytes=1 << 20, schema_sql=migrations.memory_schema()
        )
        stack.push_async_callback(database.close)
        targets = []
        for _ in range(2):
            client = redis_client.connect(redis.url)
            stack.push_async_callback(redis_client.close, client)
            server, target = await serve(database, RedisRateLimiter(client, DEFAULTS), principals)
            stack.push_async_callback(server.stop, None)
            targets.append(target)
        name = token(principals, rate=1.0, burst=4)
        first, second = targets
        codes = [await get_record(target, name) for target in (first, second) * 2]
        assert codes == [grpc.StatusCode.NOT_FOUND] * 4
        assert await get_record(first, name) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await get_record(second, name) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_two_server_processes_share_a_token_bucket(pg, redis, database_url, tmp_path) -> None:
    from tests.support.server import StrataProcess

    url = database_url("postgres")
    env = {
        "STRATA_AUTH": "token",
        "STRATA_REDIS_URL": redis.url,
        "STRATA_TOKEN_RATE": "1",
        "STRATA_TOKEN_BURST": "3",
    }
    servers = [StrataProcess(url, tmp_path / f"replica-{i}", **env) for i in range(2)]
    for server in servers:
        server.start()
    try:
        created = strata(
            "token",
            "create",
            "--name",
            unique("rates"),
            "--role",
            "writer",
            "--namespace",
            "*",
            cwd=tmp_path,
            STRATA_DATABASE_URL=url,
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        codes = []
        for server in servers * 3:
            with server.channel() as channel:
                stub = records_pb2_grpc.RecordServiceStub(channel)
                try:
                    stub.GetRecord(
                        records_pb2.GetRecordRequest(collection="c", id="x"),
                        metadata=(("authorization", f"Bearer {secret}"),),
                    )
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
        # One bucket of 3 for both replicas, refilled at 1 a second.
        assert codes[:3] == [grpc.StatusCode.NOT_FOUND] * 3
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[3:]
    finally:
        for server in servers:
            server.stop()
