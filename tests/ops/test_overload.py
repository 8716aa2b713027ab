"""Bursts and overload (issue 17, item 9): a burst of RPCs is served, or shed
explicitly (RESOURCE_EXHAUSTED with RetryInfo, logged and counted), never answered
CANCELLED unseen.

Before the fix gRPC core cancelled the calls the application had not accepted yet
once more than 1,000 were waiting: 2,000 follows opened at once lost 100-200 of
them, 4,000 LeaseJobs long polls about 1,300, with no log line and no metric.
Each shape gets a server of its own, with its metrics on a port of its own.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from strata.v1 import queue_pb2, queue_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc
from tests.conftest import SHAPES
from tests.support.ports import free_port
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess

pytestmark = pytest.mark.slow

BURST = 2_000
"""Calls opened at once: twice gRPC core's default backlog (1,000), where it used to
start cancelling the ones the application had not accepted yet."""
CHANNELS = 4


def start_server(
    shape: str,
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    workdir: Path,
    **env: str,
) -> tuple[StrataProcess, int]:
    """A server of `shape` (PostgreSQL with Redis events, or SQLite) with metrics on a
    free port; returns it and that port."""
    metrics_port = free_port()
    settings = {"STRATA_METRICS_LISTEN": f"127.0.0.1:{metrics_port}", **env}
    if shape == "postgres":
        redis: RedisServer = request.getfixturevalue("redis")
        settings["STRATA_REDIS_URL"] = redis.url
    server = StrataProcess(database_url(shape), workdir, **settings)
    server.start()
    return server, metrics_port


def scrape(port: int) -> str:
    """The server's /metrics text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` with exactly these labels (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', match[2] or "")) == labels:
            return float(match[3])
    return 0.0


def settle(port: int) -> None:
    """Wait until the server runs no RPC (those of an earlier test have ended)."""
    deadline = time.monotonic() + 30
    while sample(scrape(port), "strata_rpcs_in_progress") > 0:
        assert time.monotonic() < deadline, "RPCs of an earlier test still run"
        time.sleep(0.05)


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay of a failed call, in seconds (None without one)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def outcome(error: grpc.aio.AioRpcError) -> str:
    """How a failed call ended: "shed" when RESOURCE_EXHAUSTED with a RetryInfo delay,
    else its code and details (which the tests then report)."""
    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_delay(error):
        return "shed"
    return f"{error.code().name}: {error.details()}"


async def open_follows(target: str, transcript: str, count: int, channels: int) -> Counter[str]:
    """Open `count` following ReadTranscripts at once over `channels` connections;
    count how each one went ("open" once its first message arrived, while all the
    others are still open), then close them all."""
    links = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]
    outcomes: Counter[str] = Counter()
    everyone_tried = asyncio.Event()
    tried = 0

    async def follow(index: int) -> None:
        nonlocal tried
        stub = transcripts_pb2_grpc.TranscriptServiceStub(links[index % channels])
        call = stub.ReadTranscript(
            transcripts_pb2.ReadTranscriptRequest(id=transcript, follow=True)
        )
        try:
            async for _ in call:
                outcomes["open"] += 1
                break
        except grpc.aio.AioRpcError as error:
            outcomes[outcome(error)] += 1
        tried += 1
        if tried == count:
            everyone_tried.set()
        await everyone_tried.wait()  # hold the stream open until every call got an answer
        call.cancel()

    try:
        await asyncio.wait_for(asyncio.gather(*(follow(i) for i in range(count))), 240)
    finally:
        for link in links:
            await link.close()
    return outcomes


async def long_polls(target: str, queue: str, count: int, channels: int) -> Counter[str]:
    """Start `count` LeaseJobs long polls (wait 2 s, nothing to lease) at once over
    `channels` connections and count how each ended."""
    links = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels)
    ]
    outcomes: Counter[str] = Counter()

    async def poll(index: int) -> None:
        stub = queue_pb2_grpc.QueueServiceStub(links[index % channels])
        try:
            await stub.LeaseJobs(
                queue_pb2.LeaseJobsRequest(
                    queue=queue, max_jobs=1, wait=duration_pb2.Duration(seconds=2)
                )
            )
            outcomes["ok"] += 1
        except grpc.aio.AioRpcError as error:
            outcomes[outcome(error)] += 1

    try:
        await asyncio.wait_for(asyncio.gather(*(poll(i) for i in range(count))), 240)
    finally:
        for link in links:
            await link.close()
    return outcomes


@pytest.fixture(scope="module", params=SHAPES)
def roomy(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, int]]:
    """A server per shape with the default limits, which a burst of BURST calls over
    CHANNELS connections stays within."""
    server, port = start_server(
        request.param, request, database_url, tmp_path_factory.mktemp(f"roomy-{request.param}")
    )
    yield server, port
    server.stop()


def test_a_burst_of_follows_is_served_not_cancelled(roomy) -> None:
    server, _port = roomy
    transcript = f"t-{uuid.uuid4().hex[:12]}"
    with server.channel() as channel:
        transcripts_pb2_grpc.TranscriptServiceStub(channel).CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript)
        )
    outcomes = asyncio.run(open_follows(server.target, transcript, BURST, CHANNELS))
    assert outcomes == {"open": BURST}, outcomes


def test_a_burst_of_long_polls_is_served_not_cancelled(roomy) -> None:
    server, port = roomy
    before = scrape(port)
    outcomes = asyncio.run(long_polls(server.target, f"q-{uuid.uuid4().hex[:12]}", BURST, CHANNELS))
    assert outcomes == {"ok": BURST}, outcomes
    # Every one of them reached the application, which counted it.
    method = "QueueService/LeaseJobs"
    grown = sample(scrape(port), "strata_rpcs_total", method=method, code="OK") - sample(
        before, "strata_rpcs_total", method=method, code="OK"
    )
    assert grown == BURST


PER_CONNECTION = 100
TOTAL = 250


@pytest.fixture(scope="module", params=SHAPES)
def tight(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, int]]:
    """A server per shape with small limits: PER_CONNECTION RPCs per connection,
    TOTAL in all."""
    server, port = start_server(
        request.param,
        request,
        database_url,
        tmp_path_factory.mktemp(f"tight-{request.param}"),
        STRATA_MAX_STREAMS=str(TOTAL),
        STRATA_MAX_STREAMS_PER_CONNECTION=str(PER_CONNECTION),
        STRATA_OVERLOAD_RETRY_SECONDS="2.5",
        STRATA_LOG_LEVEL="warning",
    )
    yield server, port
    server.stop()


def test_streams_beyond_the_connection_limit_are_shed_with_retry_info(tight) -> None:
    server, port = tight
    transcript = f"t-{uuid.uuid4().hex[:12]}"
    with server.channel() as channel:
        transcripts_pb2_grpc.TranscriptServiceStub(channel).CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript)
        )
    settle(port)
    before = scrape(port)
    outcomes = asyncio.run(open_follows(server.target, transcript, 3 * PER_CONNECTION // 2, 1))
    assert outcomes == {"open": PER_CONNECTION, "shed": PER_CONNECTION // 2}, outcomes
    after = scrape(port)
    shed = sample(after, "strata_rpcs_shed_total", limit="connection") - sample(
        before, "strata_rpcs_shed_total", limit="connection"
    )
    exhausted = sample(
        after,
        "strata_rpcs_total",
        method="TranscriptService/ReadTranscript",
        code="RESOURCE_EXHAUSTED",
    ) - sample(
        before,
        "strata_rpcs_total",
        method="TranscriptService/ReadTranscript",
        code="RESOURCE_EXHAUSTED",
    )
    assert shed == exhausted == PER_CONNECTION // 2
    assert "overloaded: RPCs shed with RESOURCE_EXHAUSTED" in server.log()
    assert "Traceback" not in server.log()


def test_streams_beyond_the_total_limit_are_shed_with_retry_info(tight) -> None:
    server, port = tight
    transcript = f"t-{uuid.uuid4().hex[:12]}"
    with server.channel() as channel:
        transcripts_pb2_grpc.TranscriptServiceStub(channel).CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript)
        )
    settle(port)
    before = scrape(port)
    # 4 connections of 90 streams each: within the connection limit, over the total.
    outcomes = asyncio.run(open_follows(server.target, transcript, 360, 4))
    assert outcomes == {"open": TOTAL, "shed": 360 - TOTAL}, outcomes
    shed = sample(scrape(port), "strata_rpcs_shed_total", limit="total") - sample(
        before, "strata_rpcs_shed_total", limit="total"
    )
    assert shed == 360 - TOTAL


def test_a_shed_call_carries_the_configured_retry_delay(tight) -> None:
    server, port = tight
    settle(port)

    async def one_too_many() -> float | None:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = queue_pb2_grpc.QueueServiceStub(channel)
            request = queue_pb2.LeaseJobsRequest(
                queue=f"q-{uuid.uuid4().hex[:12]}",
                max_jobs=1,
                wait=duration_pb2.Duration(seconds=3),
            )
            polls = [stub.LeaseJobs(request) for _ in range(PER_CONNECTION + 1)]
            results = await asyncio.gather(*polls, return_exceptions=True)
        errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(errors) == 1, [outcome(e) for e in errors]
        assert errors[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return retry_delay(errors[0])

    assert asyncio.run(one_too_many()) == 2.5
