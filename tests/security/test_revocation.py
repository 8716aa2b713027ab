"""A token revoked through replica A, or with `strata token revoke` (no server), is
refused by every replica within a second, though each had it cached: two server
processes on one PostgreSQL, with wakeups through Redis or through PostgreSQL
NOTIFY; the embedded shape's one process; and `serve --workers 2` on one SQLite
file, whose processes cannot tell each other anything.

The servers re-check the tokens table only hourly here, so on PostgreSQL only the
revocation event can make them refuse the token in time; on SQLite it is the
sub-second re-check that stands in for events there. A cached token's expiry is
checked on every call, without any event.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from strata.v1 import access_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc
from tests.security.support import (
    Bearer,
    SecureServer,
    cli_token,
    refused_within,
    strata,
    unique,
)
from tests.support import processes
from tests.support.ports import free_port
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
    # Twice each: the first call reads the token, the next ones recall it by secret.
    for _ in range(2):
        assert get_record(replicas.b, token) == grpc.StatusCode.NOT_FOUND  # B caches it
        assert get_record(replicas.a, token) == grpc.StatusCode.NOT_FOUND

    revoked = replicas.a.revoke(name)
    began = time.monotonic()
    assert revoked.HasField("revoke_time")
    assert get_record(replicas.a, token) == grpc.StatusCode.UNAUTHENTICATED
    took = refused_within(lambda: [get_record(replicas.b, token)], began)
    assert took <= ONE_SECOND, f"replica B refused it only after {took:.2f} s"


def test_a_revocation_from_the_cli_is_refused_on_every_replica_within_a_second(replicas):
    name = unique("cli")
    token = cli_token(replicas.a.database_url, name, "writer", "*")
    for server in (replicas.a, replicas.b, replicas.a, replicas.b):
        assert get_record(server, token) == grpc.StatusCode.NOT_FOUND  # each caches it

    done = strata(
        "token", "revoke", name, database_url=replicas.a.database_url, **replicas.a.events_env
    )
    began = time.monotonic()
    assert done.returncode == 0, done.stderr
    took = refused_within(lambda: [get_record(s, token) for s in (replicas.a, replicas.b)], began)
    assert took <= ONE_SECOND, f"a replica refused it only after {took:.2f} s"


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


# --- serve --workers 2 on one SQLite file ------------------------------------------


def workers_by_client_port(pids: list[int], server_port: int) -> dict[int, int]:
    """The worker (of `pids`) holding each connection to `server_port`, by the
    client's port: read from /proc, as `ss -tp` would."""
    owners = {str(inode): pid for pid in pids for inode in processes.sockets(pid)}
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, remote, state, inode = (line.split()[i] for i in (1, 2, 3, 9))
            established = state == processes.ESTABLISHED
            ours = int(local.rsplit(":", 1)[1], 16) == server_port and established
            if ours and inode in owners:
                found[int(remote.rsplit(":", 1)[1], 16)] = owners[inode]
    return found


def test_two_sqlite_workers_refuse_a_revocation_within_a_second(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    """Neither worker can tell the other (in-process events), nor can the CLI tell
    either: each finds the revocations by re-checking the file, in time."""
    url = database_url("sqlite")
    process = StrataProcess(
        url, tmp_path, STRATA_WORKERS="2", STRATA_AUTH="token", STRATA_TOKEN_RECHECK_SECONDS="3600"
    )
    process.start(port=free_port())
    channels: list[grpc.Channel] = []
    try:
        assert process.process is not None
        pids = processes.children(process.process.pid)  # the workers
        assert len(pids) == 2
        by_api, by_cli = unique("api"), unique("cli")
        root = cli_token(url, "root", "admin", "*")
        secrets = {name: cli_token(url, name, "writer", "*") for name in (by_api, by_cli)}

        # Channels with a connection of their own each, until both workers hold some.
        held: dict[int, list[grpc.Channel]] = {pid: [] for pid in pids}
        deadline = time.monotonic() + 30
        while not all(held.values()):
            assert time.monotonic() < deadline, "every connection went to one worker"
            before = workers_by_client_port(pids, process.port)
            channel = grpc.insecure_channel(
                process.target, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            channels.append(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            after = workers_by_client_port(pids, process.port)
            new = set(after) - set(before)
            if len(new) == 1:
                held[after[new.pop()]].append(channel)
        probes = [channels_of[0] for channels_of in held.values()]

        def codes(secret: str) -> list[grpc.StatusCode]:
            found = []
            for channel in probes:
                stub = records_pb2_grpc.RecordServiceStub(
                    grpc.intercept_channel(channel, Bearer(secret))
                )
                try:
                    stub.GetRecord(records_pb2.GetRecordRequest(collection="c", id="x"), timeout=10)
                    found.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    found.append(error.code())
            return found

        for secret in secrets.values():
            assert codes(secret) == [grpc.StatusCode.NOT_FOUND] * 2  # both workers cache it

        # Through AdminService on one worker: the other hears nothing of it.
        admin = admin_pb2_grpc.AdminServiceStub(grpc.intercept_channel(probes[0], Bearer(root)))
        admin.RevokeToken(access_pb2.RevokeTokenRequest(name=by_api), timeout=30)
        began = time.monotonic()
        took = refused_within(lambda: codes(secrets[by_api]), began)
        assert took <= ONE_SECOND, f"a worker refused it only after {took:.2f} s"

        # With the CLI: neither worker hears of it.
        done = strata("token", "revoke", by_cli, database_url=url)
        began = time.monotonic()
        assert done.returncode == 0, done.stderr
        took = refused_within(lambda: codes(secrets[by_cli]), began)
        assert took <= ONE_SECOND, f"a worker refused it only after {took:.2f} s"
    finally:
        for channel in channels:
            channel.close()
        assert process.stop() == 0, process.log()
