"""An operator with grpcurl and no proto files: reflection is enough to list and call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GRPCURL = Path(sys.executable).with_name("grpcurl")


def grpcurl(server, *args: str) -> str:
    result = subprocess.run(
        [str(GRPCURL), "-plaintext", *args[:-1], server.target, args[-1]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_lists_the_services(server):
    services = set(grpcurl(server, "list").split())
    assert {
        "strata.v1.RecordService",
        "strata.v1.TransactionService",
        "strata.v1.AdminService",
        "grpc.health.v1.Health",
    } <= services


def test_grpcurl_creates_and_reads_a_record(server, collection):
    body = {"collection": collection, "record_id": "g1", "data": {"a": 1, "s": "x"}}
    created = json.loads(
        grpcurl(server, "-d", json.dumps(body), "strata.v1.RecordService/CreateRecord")
    )
    assert created["version"] == "1"
    assert created["data"] == {"a": 1, "s": "x"}
    fetched = json.loads(
        grpcurl(
            server,
            "-d",
            json.dumps({"collection": collection, "id": "g1"}),
            "strata.v1.RecordService/GetRecord",
        )
    )
    assert fetched == created
