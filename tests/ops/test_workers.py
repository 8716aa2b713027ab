"""`strata serve --workers N`: N processes serve one port (SO_REUSEPORT), share
their writes, and stop together."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from strata.v1 import records_pb2, records_pb2_grpc
from tests.support.ports import free_port
from tests.support.processes import alive, children, connections
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess


def _start(
    database_url: str, workdir: Path, *, workers: int = 2, **env: str
) -> tuple[StrataProcess, list[int]]:
    """A started `strata serve --workers N` (its log at info) and its workers' pids."""
    server = StrataProcess(
        database_url, workdir, STRATA_WORKERS=str(workers), STRATA_LOG_LEVEL="info", **env
    )
    # Three processes import the server on a shared machine: more than one does.
    server.start(timeout=90, port=free_port())
    assert server.process is not None
    pids = children(server.process.pid)
    assert len(pids) == workers, server.log()
    return server, pids


def _shape_env(shape: str, redis: Callable[[], RedisServer]) -> dict[str, str]:
    return {"STRATA_REDIS_URL": redis().url} if shape == "postgres" else {}


def _channel_per_worker(server: StrataProcess, pids: list[int]) -> dict[int, grpc.Channel]:
    """One open channel (its own connection) served by each worker, found by opening
    channels one at a time and seeing which worker accepted each connection."""
    found: dict[int, grpc.Channel] = {}
    for _ in range(64):
        before = {pid: connections(pid, server.port) for pid in pids}
        channel = grpc.insecure_channel(
            server.target, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True
        )
        gained = [pid for pid in pids if connections(pid, server.port) - before[pid]]
        assert len(gained) == 1, gained
        if gained[0] in found:
            channel.close()
        else:
            found[gained[0]] = channel
        if len(found) == len(pids):
            return found
    raise AssertionError(f"64 connections did not reach every worker: {sorted(found)}")


def _free_port_pair() -> int:
    """A free port whose next one is free too (worker i serves metrics on port + i)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 1))
            return port
    raise AssertionError("no two adjacent free ports")


def _rpcs(metrics_port: int, method: str) -> float:
    """How many calls of `method` the worker serving metrics on `metrics_port` served."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    label = f'method="{method}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("strata_rpcs_total{") and label in line
    )


@pytest.fixture(params=["sqlite", "postgres"])
def two_workers(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path: Path,
) -> Iterator[tuple[StrataProcess, list[int]]]:
    """`strata serve --workers 2` on a shape: a SQLite file, or PostgreSQL with Redis."""
    env = _shape_env(request.param, lambda: request.getfixturevalue("redis"))
    env["STRATA_METRICS_LISTEN"] = f"127.0.0.1:{_free_port_pair()}"
    server, pids = _start(database_url(request.param), tmp_path, **env)
    yield server, pids
    server.kill()


def test_workers_take_connections_share_writes_and_stop_together(
    two_workers: tuple[StrataProcess, list[int]],
) -> None:
    server, pids = two_workers
    channels = _channel_per_worker(server, pids)
    try:
        first, second = (records_pb2_grpc.RecordServiceStub(channels[pid]) for pid in pids)
        # Read-your-writes across workers: each reads at once what the other wrote.
        for writer, reader, record_id in ((first, second, "a"), (second, first, "b")):
            created = writer.CreateRecord(
                records_pb2.CreateRecordRequest(collection="w", record_id=record_id), timeout=5
            )
            read = reader.GetRecord(
                records_pb2.GetRecordRequest(collection="w", id=record_id), timeout=5
            )
            assert read.version == created.version == 1
        update = records_pb2.UpdateRecordRequest(collection="w", id="a", expected_version=1)
        update.data.update({"n": 2})
        second.UpdateRecord(update, timeout=5)
        read = first.GetRecord(records_pb2.GetRecordRequest(collection="w", id="a"), timeout=5)
        assert (read.version, dict(read.data)) == (2, {"n": 2})
        # A watch served by one worker sees a write made through the other.
        watch = first.WatchRecords(records_pb2.WatchRecordsRequest(collection="w"), timeout=20)
        assert next(watch).HasField("started")
        second.CreateRecord(
            records_pb2.CreateRecordRequest(collection="w", record_id="c"), timeout=5
        )
        change = next(watch).change
        assert (change.record_id, change.kind) == ("c", records_pb2.CHANGE_KIND_CREATED)
        watch.cancel()
        # Each worker serves its own metrics, on the metrics port + its index, and
        # counts the calls it served: here each served a GetRecord.
        metrics = int(server.env["STRATA_METRICS_LISTEN"].rpartition(":")[2])
        ports = (metrics, metrics + 1)
        assert all(_rpcs(port, "RecordService/GetRecord") >= 1 for port in ports)
    finally:
        for channel in channels.values():
            channel.close()
    # SIGHUP reaches every worker (each re-reads its TLS certificates: here none).
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while server.log().count("SIGHUP ignored") < len(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log().count("SIGHUP ignored") == len(pids), server.log()
    assert all(alive(pid) for pid in pids)
    # SIGTERM stops every worker gracefully, and the supervisor exits 0.
    assert server.stop() == 0, server.log()
    assert not any(alive(pid) for pid in pids)
    assert server.log().count('"event": "stopped"') == len(pids), server.log()
    assert "Traceback" not in server.log()


def test_a_dead_worker_stops_the_others_and_the_supervisor_fails(
    database_url: Callable[[str], str], redis: RedisServer, tmp_path: Path
) -> None:
    server, pids = _start(database_url("postgres"), tmp_path, STRATA_REDIS_URL=redis.url)
    assert server.process is not None
    os.kill(pids[0], signal.SIGKILL)
    try:
        status = server.process.wait(timeout=30)
    finally:
        server.kill()
    assert status == 1, server.log()
    assert not alive(pids[1])
    log = server.log()
    assert "worker exited unexpectedly" in log
    assert f'"pid": {pids[0]}' in log
    # The survivor stopped gracefully, not killed.
    assert log.count('"event": "stopped"') == 1, log


def test_workers_end_when_the_supervisor_is_killed(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    server, pids = _start(database_url("sqlite"), tmp_path)
    server.kill()  # SIGKILL: the supervisor can pass nothing on
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), server.log()
    # Each ended gracefully (the kernel's SIGTERM), not by a kill.
    assert server.log().count('"event": "stopped"') == len(pids), server.log()


@pytest.mark.parametrize(
    ("listen", "database", "line"),
    [
        ("127.0.0.1:0", "sqlite:///strata.db", "--workers needs a fixed port"),
        ("127.0.0.1:{port}", "sqlite://:memory:", "--workers needs a shared database"),
    ],
)
def test_workers_refuse_what_they_cannot_share(
    listen: str, database: str, line: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "strata_server", "serve", "--workers", "2"],
        cwd=tmp_path,
        env={
            **os.environ,
            "STRATA_LISTEN": listen.format(port=free_port()),
            "STRATA_DATABASE_URL": database,
            "STRATA_CONSOLE_LISTEN": "off",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [only] = result.stderr.strip().splitlines()
    assert only.startswith(f"strata: {line}")
