"""Metrics over HTTP and request ids: a real server process, scraped with urllib."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from strata.v1 import queue_pb2, queue_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.helpers import to_struct
from tests.support.ports import free_port
from tests.support.server import StrataProcess


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StrataProcess, int]]:
    workdir: Path = tmp_path_factory.mktemp("observed")
    port = free_port()
    server = StrataProcess(
        f"sqlite:///{workdir / 'strata.db'}",
        workdir,
        STRATA_METRICS_LISTEN=f"127.0.0.1:{port}",
        STRATA_QUEUE_METRICS_SECONDS="0.2",
    )
    server.start()
    yield server, port
    assert server.stop() == 0, server.log()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def _value(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` with exactly these labels (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)\{(.*)\} (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        if found == labels:
            return float(match[3])
    return 0.0


def test_rpcs_are_counted_by_method_and_code(observed) -> None:
    server, port = observed
    before = _scrape(port)
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        stub.CreateRecord(
            records_pb2.CreateRecordRequest(collection="m", record_id="one", data=to_struct({}))
        )
        for _ in range(3):
            with pytest.raises(grpc.RpcError):
                stub.GetRecord(records_pb2.GetRecordRequest(collection="m", id="missing"))
    after = _scrape(port)
    for method, code, n in (
        ("RecordService/CreateRecord", "OK", 1),
        ("RecordService/GetRecord", "NOT_FOUND", 3),
    ):
        grown = _value(after, "strata_rpcs_total", method=method, code=code) - _value(
            before, "strata_rpcs_total", method=method, code=code
        )
        assert grown == n, (method, code)
    count = _value(
        after,
        "strata_rpc_duration_seconds_count",
        method="RecordService/GetRecord",
        code="NOT_FOUND",
    )
    assert count >= 3
    assert "process_resident_memory_bytes" in after
    assert _value(after, "strata_db_pool_connections", state="size") == 5  # 4 readers + writer


def test_open_streams_are_a_gauge(observed) -> None:
    server, port = observed
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        watch = stub.WatchRecords(records_pb2.WatchRecordsRequest(collection="m"))
        next(watch)  # started: the stream is open
        assert (
            _value(_scrape(port), "strata_active_streams", method="RecordService/WatchRecords") == 1
        )
        watch.cancel()
    text = _scrape(port)
    for _ in range(50):
        if _value(text, "strata_active_streams", method="RecordService/WatchRecords") == 0:
            break
        text = _scrape(port)
    assert _value(text, "strata_active_streams", method="RecordService/WatchRecords") == 0


def test_request_ids_come_back_in_trailing_metadata(observed) -> None:
    server, _ = observed
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        _, call = stub.CreateRecord.with_call(
            records_pb2.CreateRecordRequest(collection="m", data=to_struct({})),
            metadata=(("x-request-id", "req-42"),),
        )
        assert dict(call.trailing_metadata())["x-request-id"] == "req-42"
        _, call = stub.CreateRecord.with_call(
            records_pb2.CreateRecordRequest(collection="m", data=to_struct({}))
        )
        assert re.fullmatch(r"[0-9a-f]{16}", dict(call.trailing_metadata())["x-request-id"])
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetRecord(
                records_pb2.GetRecordRequest(collection="m", id="missing"),
                metadata=(("x-request-id", "req-43"),),
            )
        assert dict(raised.value.trailing_metadata())["x-request-id"] == "req-43"
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_queue_depth_and_age(observed) -> None:
    server, port = observed
    with server.channel() as channel:
        stub = queue_pb2_grpc.QueueServiceStub(channel)
        for _ in range(3):
            stub.Enqueue(queue_pb2.EnqueueRequest(namespace="metrics", queue="mails"))
        stub.Enqueue(
            queue_pb2.EnqueueRequest(
                namespace="metrics", queue="mails", delay=duration_pb2.Duration(seconds=600)
            )
        )
        stub.LeaseJobs(queue_pb2.LeaseJobsRequest(namespace="metrics", queue="mails", max_jobs=1))
    labels = {"namespace": "metrics", "queue": "mails"}
    deadline = time.monotonic() + 10
    while True:
        text = _scrape(port)
        counts = {
            state: _value(text, "strata_queue_jobs", state=state, **labels)
            for state in ("available", "scheduled", "leased")
        }
        if counts == {"available": 2, "scheduled": 1, "leased": 1}:
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)
    time.sleep(0.5)
    age = _value(_scrape(port), "strata_queue_oldest_available_age_seconds", **labels)
    assert 0.4 < age < 30
