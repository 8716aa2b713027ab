"""The `strata` client commands (audit, ...) as an operator runs them: subprocesses
against a live server."""

from __future__ import annotations

from pathlib import Path

from strata.v1 import records_pb2, records_pb2_grpc
from tests.contract.helpers import to_struct
from tests.ops.test_migrations import strata
from tests.support.server import StrataProcess


def test_audit_prints_a_table_of_the_newest_entries(server: StrataProcess, tmp_path: Path) -> None:
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        stub.CreateRecord.with_call(
            records_pb2.CreateRecordRequest(
                collection="cli", record_id="t1", data=to_struct({"a": 1})
            ),
            metadata=(("x-strata-actor", "grace"),),
        )
        stub.UpdateRecord(
            records_pb2.UpdateRecordRequest(collection="cli", id="t1", data=to_struct({"a": 2}))
        )
    result = strata("audit", "--server", server.target, "--id", "cli/t1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "cli/t1" in line]
    assert len(lines) == 2
    assert "update" in lines[0] and "create" in lines[1] and "grace" in lines[1]

    only = strata("audit", "--server", server.target, "--actor", "nobody-at-all", cwd=tmp_path)
    assert only.returncode == 0 and "no audit entries match" in only.stderr


def test_audit_against_no_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = strata("audit", "--server", "127.0.0.1:1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("strata: cannot reach the server at 127.0.0.1:1")
    assert "Traceback" not in result.stderr


def test_audit_bad_input_is_reported(server: StrataProcess, tmp_path: Path) -> None:
    result = strata(
        "audit",
        "--server",
        server.target,
        "--since",
        "2030-01-02",
        "--until",
        "2030-01-01",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("strata: INVALID_ARGUMENT")
