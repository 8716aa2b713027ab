"""A token revoked through replica A is refused by replica B within a second, though
B had it cached: two server processes on one PostgreSQL, with wakeups through
Redis or through PostgreSQL NOTIFY, and the embedded shape's one process.

The servers re-check the tokens table only hourly here, so only the revocation
event can make B refuse the token in time. A cached token's expiry is checked on
every call, without any event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest

from strata.v1 import records_pb2, records_pb2_grpc
from tests.security.support import SecureServer, cli_token, unique
from tests.support.server import StrataProcess

ONE_SECOND = 1.0


@dataclass
class Replicas:
    """Two servers on one database (the same one twice on the embedded shape)."""

    a: SecureServer
    b: SecureServer


@pytest.fixture(scope="module", params=["local", "redis", "notify"])
def replicas(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    env = {"STRATA_AUTH": "token", "STRATA_TOKEN_RECHECK_SECONDS": "3600"}
    url = database_url("sqlite" if request.param == "local" else "postgres")
    if request.param == "redis":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis").url
    count = 1 if request.param == "local" else 2
    processes = [
        StrataProcess(url, tmp_path_factory.mktemp(f"replica-{request.param}"), **env)
        for _ in range(count)
    ]
    servers: list[SecureServer] = []
    try:
        for process in processes:
            process.start()
        root = cli_token(url, "root", "admin", "*")
        servers = [SecureServer(process, root, []) for process in processes]
        yield Replicas(servers[0], servers[-1])
    finally:
        for server in servers:
            server.close()
        for process in processes:
            process.stop()


def get_record(server: SecureServer, token: str) -> grpc.StatusCode:
    """A GetRecord with `token`: OK, NOT_FOUND, or the refusal."""
    stub = records_pb2_grpc.RecordServiceStub(server.channel(token))
    try:
        stub.GetRecord(
            records_pb2.GetRecordRequest(collection="c", id=uuid.uuid4().hex), timeout=10
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_a_revocation_on_one_replica_is_refused_on_the_other_within_a_second(replicas):
    name = unique("svc")
    token = replicas.a.token("writer", "*", name=name)
    assert get_record(replicas.b, token) == grpc.StatusCode.NOT_FOUND  # B caches it
    assert get_record(replicas.a, token) == grpc.StatusCode.NOT_FOUND

    revoked = replicas.a.revoke(name)
    began = time.monotonic()
    assert revoked.HasField("revoke_time")
    assert get_record(replicas.a, token) == grpc.StatusCode.UNAUTHENTICATED
    while (code := get_record(replicas.b, token)) != grpc.StatusCode.UNAUTHENTICATED:
        assert code == grpc.StatusCode.NOT_FOUND
        if time.monotonic() - began > 10 * ONE_SECOND:
            break
        time.sleep(0.02)
    took = time.monotonic() - began
    assert code == grpc.StatusCode.UNAUTHENTICATED, "replica B never refused the revoked token"
    assert took <= ONE_SECOND, f"replica B refused it only after {took:.2f} s"


def test_other_tokens_keep_working_after_a_revocation(replicas):
    kept = replicas.a.token("reader", "*")
    gone = unique("gone")
    replicas.a.token("reader", "*", name=gone)
    assert get_record(replicas.b, kept) == grpc.StatusCode.NOT_FOUND
    replicas.a.revoke(gone)
    assert get_record(replicas.b, kept) == grpc.StatusCode.NOT_FOUND


def test_revoking_twice_returns_the_token_unchanged_and_an_unknown_name_is_not_found(replicas):
    name = unique("twice")
    replicas.a.token("reader", "*", name=name)
    first = replicas.a.revoke(name)
    again = replicas.b.revoke(name)
    assert again.revoke_time == first.revoke_time
    with pytest.raises(grpc.RpcError) as raised:
        replicas.a.revoke(unique("never"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_cached_token_is_refused_once_it_expires(replicas):
    token = replicas.a.token("reader", "*", ttl=2)
    assert get_record(replicas.b, token) == grpc.StatusCode.NOT_FOUND  # now cached
    deadline = time.monotonic() + 30
    while (code := get_record(replicas.b, token)) == grpc.StatusCode.NOT_FOUND:
        assert time.monotonic() < deadline, "the token was still accepted 30 s after its ttl"
        time.sleep(0.1)
    assert code == grpc.StatusCode.UNAUTHENTICATED
