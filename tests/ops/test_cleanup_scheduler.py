"""The background cleanup scheduler: two server processes on one database (one
PostgreSQL; one SQLite file), and only one of them runs cleanups until it stops,
when the other takes over. Runs are read from each process's metrics."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.helpers import seconds, to_struct
from tests.ops.test_observability import _value
from tests.support.ports import free_port
from tests.support.server import StrataProcess

INTERVAL = 0.3


def scheduled_runs(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return _value(
        text, "strata_cleanup_runs_total", trigger="scheduler", dry_run="false", result="ok"
    )


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(
    request: pytest.FixtureRequest, database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[list[tuple[StrataProcess, int]]]:
    url = database_url(request.param)
    started: list[tuple[StrataProcess, int]] = []
    for i in range(2):
        port = free_port()
        server = StrataProcess(
            url,
            tmp_path / f"replica{i}",
            STRATA_CLEANUP_INTERVAL_SECONDS=str(INTERVAL),
            STRATA_METRICS_LISTEN=f"127.0.0.1:{port}",
        )
        server.start()
        started.append((server, port))
    yield started
    for server, _ in started:
        server.stop()


def test_one_replica_runs_cleanups_until_it_stops(replicas) -> None:
    (first, first_port), (second, second_port) = replicas
    wait_for(lambda: scheduled_runs(first_port) + scheduled_runs(second_port) >= 3)
    time.sleep(INTERVAL * 4)
    runs = {first_port: scheduled_runs(first_port), second_port: scheduled_runs(second_port)}
    leaders = [port for port, count in runs.items() if count > 0]
    assert len(leaders) == 1, runs

    # The leader's cleanups apply the policies: old records go with no RunCleanup.
    ns = f"sched-{uuid.uuid4().hex[:8]}"
    with first.channel() as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        for id in ("a", "b"):
            records.CreateRecord(
                records_pb2.CreateRecordRequest(
                    namespace=ns, collection="logs", record_id=id, data=to_struct({})
                )
            )
        admin_pb2_grpc.AdminServiceStub(channel).SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace=ns,
                target=admin_pb2.RETENTION_TARGET_RECORDS,
                selector="logs",
                max_age=seconds(1),
            )
        )

        def gone() -> bool:
            found = records.BatchGetRecords(
                records_pb2.BatchGetRecordsRequest(namespace=ns, collection="logs", ids=["a", "b"])
            )
            return not found.records

        wait_for(gone)

    leader, follower_port = (
        (first, second_port) if leaders == [first_port] else (second, first_port)
    )
    before = scheduled_runs(follower_port)
    assert before == 0
    assert leader.stop() == 0, leader.log()
    wait_for(lambda: scheduled_runs(follower_port) > 0)
