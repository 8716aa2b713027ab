"""`strata serve --workers N`: N processes serve one port and stop together."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from strata.v1 import records_pb2, records_pb2_grpc
from tests.support.ports import free_port
from tests.support.server import StrataProcess


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def test_two_workers_share_one_port(database_url: Callable[[str], str], tmp_path: Path) -> None:
    port = free_port()
    server = StrataProcess(database_url("sqlite"), tmp_path, STRATA_WORKERS="2")
    server.start(port=port)
    try:
        assert server.process is not None
        workers = _children(server.process.pid)
        assert len(workers) == 2
        deadline = time.monotonic() + 20
        ready = 0
        while ready < 10 and time.monotonic() < deadline:
            with grpc.insecure_channel(server.target) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=2
                    )
                    ready += reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    time.sleep(0.1)
        # Fresh channels (new connections) land on either worker; all must serve.
        for n in range(40):
            with grpc.insecure_channel(server.target) as channel:
                stub = records_pb2_grpc.RecordServiceStub(channel)
                stub.CreateRecord(
                    records_pb2.CreateRecordRequest(collection="w", record_id=f"r{n}"), timeout=5
                )
        with grpc.insecure_channel(server.target) as channel:
            count = records_pb2_grpc.RecordServiceStub(channel).CountRecords(
                records_pb2.CountRecordsRequest(collection="w"), timeout=5
            )
        assert count.count == 40
    finally:
        status = server.stop()
    assert status == 0, server.log()
    assert "Traceback" not in server.log()
