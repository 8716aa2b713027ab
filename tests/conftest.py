"""Shared fixtures: real servers over real channels, on both storage shapes.

`server` runs each test against the embedded shape (SQLite file, in-process
cache) and the production shape (PostgreSQL and Redis, which caches records and
carries wakeups). Servers are started once per session and shape; tests isolate
themselves with a fresh collection name (`collection` fixture).

`make test` runs the suite on pytest-xdist workers (`--dist worksteal`). Each
worker has a session of its own: its own PostgreSQL, Redis, moto and servers, on
ports the kernel picks, in its own temp folder. A worker starts with one
contiguous half of the tests in collection order and takes the tail of the
other's queue when it runs dry, so a module's tests mostly run on one worker and
its module-scoped servers start once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest

from strata.v1 import admin_pb2_grpc, records_pb2_grpc, transaction_pb2_grpc
from tests.support.pg import PgServer
from tests.support.redis import RedisServer
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

SHAPES = ("sqlite", "postgres")

pytest_plugins = ["tests.fuzz.summary"]


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A throwaway PostgreSQL 15 server for the whole session."""
    server = PgServer(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Makes a fresh database URL of a shape: a new SQLite file or a new PG database."""

    def make(shape: str) -> str:
        if shape == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'strata.db'}"
        return pg.create_database(f"strata_{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throwaway redis-server for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A throwaway S3 endpoint (moto) for the whole session."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


UNCACHED_COLLECTION = "uncached"
"""The session servers never cache records of this collection (a per-collection TTL
of 0), so tests can compare the cached and uncached paths."""


def start_shape_server(
    request: pytest.FixtureRequest,
    shape: str,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> StrataProcess:
    """A started strata server of a shape with the session servers' settings, on a
    fresh database (and, on PostgreSQL, a fresh bucket)."""
    env = {
        "STRATA_RECORD_CACHE_COLLECTION_TTLS": f'{{"{UNCACHED_COLLECTION}": 0}}',
        # Cleanups run when a test asks (RunCleanup); the scheduler has its own tests.
        "STRATA_CLEANUP_INTERVAL_SECONDS": "3600",
        # Orphan blobs go at the first cleanup or repair (tests plant them).
        "STRATA_BLOB_SWEEP_GRACE_SECONDS": "0",
    }
    if shape == "postgres":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis").url
        # PostgreSQL with blobs in S3; SQLite keeps them on local disk.
        env.update(request.getfixturevalue("s3").env(f"strata-{uuid.uuid4().hex[:12]}"))
    # A new interpreter, as an operator starts it: the suite's other servers are forked
    # from one that imported the server (tests/support/cli.py), and these are the ones
    # most tests talk to.
    process = StrataProcess(
        database_url(shape), tmp_path_factory.mktemp(shape), fresh_interpreter=True, **env
    )
    process.start()
    return process


@pytest.fixture(scope="session", params=SHAPES)
def server(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StrataProcess]:
    """A running strata server per shape, shared by the session: SQLite with blobs on
    local disk, or PostgreSQL with Redis and blobs in S3."""
    process = start_shape_server(request, request.param, database_url, tmp_path_factory)
    yield process
    process.stop()


@pytest.fixture(scope="session", params=SHAPES)
def blob_server(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StrataProcess]:
    """A server per shape like `server`, for the tests whose checks and sweeps read
    every blob and row of a server (CheckIntegrity over all namespaces, the orphan
    sweep): on the session's server they would read what every other test left,
    such as the 200 MB round trip's blob, which cost those tests a minute."""
    process = start_shape_server(request, request.param, database_url, tmp_path_factory)
    yield process
    process.stop()


@dataclass
class Stubs:
    """Generated stubs over one channel to a server."""

    channel: grpc.Channel
    records: records_pb2_grpc.RecordServiceStub
    tx: transaction_pb2_grpc.TransactionServiceStub
    admin: admin_pb2_grpc.AdminServiceStub


@pytest.fixture(scope="session")
def stubs_for() -> Iterator[Callable[[StrataProcess], Stubs]]:
    """Stubs per server, cached so each server gets one channel."""
    cache: dict[int, Stubs] = {}

    def get(server: StrataProcess) -> Stubs:
        if server.port not in cache:
            channel = server.channel()
            cache[server.port] = Stubs(
                channel,
                records_pb2_grpc.RecordServiceStub(channel),
                transaction_pb2_grpc.TransactionServiceStub(channel),
                admin_pb2_grpc.AdminServiceStub(channel),
            )
        return cache[server.port]

    yield get
    for stubs in cache.values():
        stubs.channel.close()


@pytest.fixture
def stubs(server: StrataProcess, stubs_for: Callable[[StrataProcess], Stubs]) -> Stubs:
    """Stubs to this test's server."""
    return stubs_for(server)


@pytest.fixture
def collection() -> str:
    """A collection name no other test uses."""
    return f"c_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def shape(server: StrataProcess) -> str:
    """ "sqlite" or "postgres": the shape of this test's server."""
    return "sqlite" if server.database_url.startswith("sqlite") else "postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", "fuzz: the hostile-input suite (tests/fuzz); `make fuzz` runs it long"
    )
