"""The scheduled integrity check, on both shapes: a server with
STRATA_INTEGRITY_INTERVAL_SECONDS checks every namespace by itself, and
GetIntegrityStatus (on this server, or on another sharing its database) and the
metrics show that run's report, unreferenced blob bytes included."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc, artifacts_pb2, artifacts_pb2_grpc
from tests.contract.artifacts_support import random_bytes, upload
from tests.ops.recovery_support import strata
from tests.support.ports import free_port
from tests.support.server import StrataProcess


def gauge(text: str, name: str) -> float:
    """The value of an unlabelled gauge in a Prometheus page."""
    [value] = [line.split()[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


@pytest.mark.parametrize("shape", ["sqlite", "postgres"])
def test_a_scheduled_check_is_visible_through_the_status_rpc_and_metrics(
    shape: str, database_url: Callable[[str], str], tmp_path: Path, request
):
    env = {"STRATA_BLOB_SWEEP_GRACE_SECONDS": "3600"}
    if shape == "postgres":
        env.update(request.getfixturevalue("s3").env(f"sched-{uuid.uuid4().hex[:12]}"))
    url = database_url(shape)
    metrics_port = free_port()
    scheduled = StrataProcess(
        url,
        tmp_path / "scheduled",
        STRATA_INTEGRITY_INTERVAL_SECONDS="0.5",
        STRATA_INTEGRITY_SAMPLE_PERCENT="100",
        STRATA_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        **env,
    )
    other = StrataProcess(url, tmp_path / "other", **env)  # schedules nothing
    if shape == "sqlite":
        other.env["STRATA_DATA_DIR"] = str(tmp_path / "scheduled" / "data")
    scheduled.start()
    other.start()
    try:
        with scheduled.channel() as channel, other.channel() as other_channel:
            arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
            orphan = upload(arts, random_bytes(5000), name="orphan.bin")
            arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=orphan.id))
            uploaded = time.time()
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            every = admin_pb2.GetIntegrityStatusRequest(all_namespaces=True)
            deadline = time.monotonic() + 30
            while True:
                status = admin.GetIntegrityStatus(every)
                report = status.last_report
                if report.end_time.ToDatetime().timestamp() > uploaded + 0.1:
                    break
                assert time.monotonic() < deadline, "no scheduled check ran"
                time.sleep(0.1)
            assert status.schedule_interval.ToTimedelta().total_seconds() == 0.5
            orphans = {f.entity_id: f.bytes for f in report.findings if f.entity == "blob"}
            assert orphans[orphan.sha256] == 5000 and report.unreferenced_bytes >= 5000
            counts = {c.check: c.count for c in report.checked}
            assert counts["blob_contents"] == counts["blobs"] >= 1, "sampled 100%"
            seen_elsewhere = admin_pb2_grpc.AdminServiceStub(other_channel).GetIntegrityStatus(
                every
            )
            assert seen_elsewhere.last_report.end_time.ToDatetime() >= report.end_time.ToDatetime()
            assert not seen_elsewhere.HasField("schedule_interval")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as reply:
            text = reply.read().decode()
        assert gauge(text, "strata_integrity_unreferenced_blob_bytes") >= 5000
        assert gauge(text, "strata_integrity_last_run_timestamp_seconds") > uploaded
    finally:
        scheduled.stop()
        other.stop()


def test_strata_check_samples_and_shows_the_last_report(server: StrataProcess, tmp_path: Path):
    ns = f"cli-last-{uuid.uuid4().hex[:8]}"
    target = ("--server", server.target, "-n", ns)
    never = strata("check", "--last", *target, cwd=tmp_path)
    assert never.returncode == 0 and "no integrity check has run yet" in never.stdout
    bad = strata("check", "--sample", "101", *target, cwd=tmp_path)
    assert bad.returncode == 2
    ran = strata("check", "--sample", "100", *target, cwd=tmp_path)
    assert ran.returncode == 0 and "0 problem(s)" in ran.stdout, ran.stdout + ran.stderr
    last = strata("check", "--last", *target, cwd=tmp_path)
    assert last.returncode == 0 and "last check finished" in last.stdout
    assert "0 problem(s)" in last.stdout
