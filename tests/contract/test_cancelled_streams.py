"""A caller that goes away is normal, on both shapes: a DownloadArtifact or an
ExportNamespace cancelled mid-stream ends as CANCELLED in the metrics, and the
server logs no error and no traceback for it."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator

import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc, artifacts_pb2, artifacts_pb2_grpc
from tests.contract.archive_support import namespace
from tests.contract.artifacts_support import random_bytes, text_log, upload
from tests.contract.helpers import unique
from tests.support.ports import free_port
from tests.support.server import StrataProcess

DOWNLOADS = 10
EXPORTS = 4


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def watched_server(request, database_url, tmp_path_factory, s3) -> Iterator[StrataProcess]:  # type: ignore[no-untyped-def]
    """A server of one shape for this module alone, logging at INFO, with metrics."""
    env = {"STRATA_LOG_LEVEL": "info", "STRATA_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    if request.param == "postgres":
        env |= s3.env(unique("cancel-"))
    process = StrataProcess(
        database_url(request.param), tmp_path_factory.mktemp(f"cancel-{request.param}"), **env
    )
    process.start()
    yield process
    process.stop()


def _finished(server: StrataProcess, method: str) -> dict[str, float]:
    """strata_rpcs_total of `method`, by code."""
    port = server.env["STRATA_METRICS_LISTEN"].rpartition(":")[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    pattern = rf'strata_rpcs_total\{{code="(\w+)",method="{re.escape(method)}"\}} (\S+)'
    return {code: float(value) for code, value in re.findall(pattern, text)}


def _wait_finished(server: StrataProcess, method: str, count: int) -> dict[str, float]:
    """The codes of `method`'s RPCs once `count` of them have ended (handlers end a
    moment after the client cancels)."""
    deadline = time.monotonic() + 30
    while True:
        codes = _finished(server, method)
        if sum(codes.values()) >= count or time.monotonic() > deadline:
            return codes
        time.sleep(0.05)


def _problems(log: str) -> list[str]:
    """Log lines above INFO (structlog's JSON lines and stdlib's, as grpc logs) and
    tracebacks."""
    return [
        line
        for line in log.splitlines()
        if re.search(r'"level": "(warning|error|critical)"', line)
        or line.startswith(("WARNING", "ERROR", "CRITICAL"))
        or "Traceback" in line
    ]


def test_cancelled_downloads_and_exports_log_no_error(watched_server):
    ns = namespace()
    with watched_server.channel() as channel:
        artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        made = [
            upload(
                artifacts,
                random_bytes(24 << 20),
                namespace=ns,
                name="a.bin",
                content_type="application/octet-stream",
            ),
            upload(artifacts, text_log(500_000), namespace=ns, name="b.log"),  # compressed
        ]
        logged = len(watched_server.log())
        for i in range(DOWNLOADS):
            call = artifacts.DownloadArtifact(
                artifacts_pb2.DownloadArtifactRequest(namespace=ns, id=made[i % 2].id)
            )
            for _ in range(2 + i):
                next(call)
            call.cancel()
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for i in range(EXPORTS):
            call = admin.ExportNamespace(admin_pb2.ExportNamespaceRequest(namespace=ns))
            chunks = 0
            for message in call:
                chunks += message.HasField("chunk")
                if chunks > 2 + 5 * i:
                    break
            call.cancel()
    downloads = _wait_finished(watched_server, "ArtifactService/DownloadArtifact", DOWNLOADS)
    exports = _wait_finished(watched_server, "AdminService/ExportNamespace", EXPORTS)
    # a stream whose last message was already sent when the cancel came ended OK
    assert set(downloads) <= {"OK", "CANCELLED"} and downloads.get("CANCELLED", 0) > 0
    assert set(exports) <= {"OK", "CANCELLED"} and exports.get("CANCELLED", 0) > 0
    log = watched_server.log()[logged:]
    assert _problems(log) == []
    assert log.count("the caller went away") <= DOWNLOADS + EXPORTS  # one INFO line at most
