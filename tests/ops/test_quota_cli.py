"""`strata quota set | list` as an operator runs them: subprocesses against a live
server, on both shapes."""

from __future__ import annotations

import uuid
from pathlib import Path

from strata.v1 import access_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.helpers import to_struct
from tests.ops.test_migrations import strata
from tests.support.server import StrataProcess


def test_set_list_and_remove_a_quota(server: StrataProcess, tmp_path: Path) -> None:
    ns = f"cli-{uuid.uuid4().hex[:10]}"
    with server.channel() as channel:
        records_pb2_grpc.RecordServiceStub(channel).CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns, collection="c", record_id="r", data=to_struct({"t": "x" * 2000})
            )
        )
        admin = admin_pb2_grpc.AdminServiceStub(channel)

        saved = strata("quota", "set", ns, "10KiB", "--server", server.target, cwd=tmp_path)
        assert saved.returncode == 0, saved.stderr
        [quota] = admin.ListQuotas(access_pb2.ListQuotasRequest(namespace=ns)).quotas
        assert quota.max_bytes == 10 * 1024 and quota.used_bytes > 2000
        [row] = [line for line in saved.stdout.splitlines() if ns in line]
        assert "10.0 KiB" in row and "%" in row

        listed = strata("quota", "list", "--server", server.target, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert any(ns in line and "10.0 KiB" in line for line in listed.stdout.splitlines())

        removed = strata("quota", "set", ns, "0", "--server", server.target, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert not admin.ListQuotas(access_pb2.ListQuotasRequest(namespace=ns)).quotas
        one = strata("quota", "list", ns, "--server", server.target, cwd=tmp_path)
        assert one.returncode == 0 and "no quotas set" in one.stderr


def test_bad_input_is_one_line_and_exit_2(server: StrataProcess, tmp_path: Path) -> None:
    size = strata("quota", "set", "ns1", "lots", "--server", server.target, cwd=tmp_path)
    assert size.returncode == 2 and "is not a size" in size.stderr
    name = strata("quota", "set", "Not Valid", "1MB", "--server", server.target, cwd=tmp_path)
    assert name.returncode == 2
    assert name.stderr.startswith("strata: INVALID_ARGUMENT: namespace")
    assert "Traceback" not in name.stderr + size.stderr
