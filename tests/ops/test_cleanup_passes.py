"""Scheduled cleanup passes with two replicas on one database (one PostgreSQL; one
SQLite file): each pass runs on one replica, both report the same last pass
through GetCleanupStatus, what a pass removes is removed (and counted) once, and
an open transcript left idle is sealed with its follower on the other replica told.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc
from strata.v1 import transcripts_pb2 as tpb
from tests.contract.helpers import seconds, to_struct
from tests.contract.transcript_helpers import (
    Stream,
    append,
    create_transcript,
    messages_until,
    read_request,
    transcript_stub,
)
from tests.ops.test_migrations import strata
from tests.ops.test_observability import _value
from tests.support.ports import free_port
from tests.support.server import StrataProcess

INTERVAL = 0.3
IDLE = 3.0
"""STRATA_TRANSCRIPT_AUTO_SEAL_SECONDS of the replicas."""
NAMES = ("replica-a", "replica-b")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def gauge(text: str, name: str) -> float:
    """An unlabelled sample's value (0 when absent)."""
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


class Replica:
    def __init__(self, process: StrataProcess, metrics_port: int) -> None:
        self.process = process
        self.metrics_port = metrics_port
        self.channel = process.channel()
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.records = records_pb2_grpc.RecordServiceStub(self.channel)
        self.transcripts = transcript_stub(self.channel)

    def status(self) -> admin_pb2.GetCleanupStatusResponse:
        return self.admin.GetCleanupStatus(admin_pb2.GetCleanupStatusRequest(), timeout=10)

    def metrics(self) -> str:
        return scrape(self.metrics_port)


@pytest.fixture(params=["sqlite", "postgres"])
def replicas(
    request: pytest.FixtureRequest, database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[list[Replica]]:
    url = database_url(request.param)
    started: list[Replica] = []
    for name in NAMES:
        port = free_port()
        process = StrataProcess(
            url,
            tmp_path / name,
            STRATA_CLEANUP_INTERVAL_SECONDS=str(INTERVAL),
            STRATA_TRANSCRIPT_AUTO_SEAL_SECONDS=str(IDLE),
            STRATA_REPLICA_NAME=name,
            STRATA_METRICS_LISTEN=f"127.0.0.1:{port}",
            # SQLite: the other process writes the file too, so followers re-check it,
            # and neither may serve a record the other's cleanup removed from a cache.
            STRATA_SHARED_DATABASE="true",
            STRATA_LOCAL_CACHE="false",
        )
        process.start()
        started.append(Replica(process, port))
    yield started
    for replica in started:
        replica.channel.close()
        replica.process.stop()


def test_each_pass_runs_on_one_replica_and_both_report_it(replicas, tmp_path: Path) -> None:
    first, second = replicas
    ns = f"pass-{uuid.uuid4().hex[:8]}"
    ids = [f"r{i}" for i in range(5)]
    for id in ids:
        first.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns, collection="logs", record_id=id, data=to_struct({})
            )
        )
    first.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(
            namespace=ns,
            target=admin_pb2.RETENTION_TARGET_RECORDS,
            selector="logs",
            max_age=seconds(1),
        )
    )

    def gone() -> bool:
        found = second.records.BatchGetRecords(
            records_pb2.BatchGetRecordsRequest(namespace=ns, collection="logs", ids=ids)
        )
        return not found.records

    wait_for(gone)
    # A pass or two later, both replicas show the same last pass, by one of them.
    wait_for(lambda: first.status().HasField("last"))
    time.sleep(INTERVAL * 3)
    seen = [replica.status().last for replica in replicas]
    assert seen[0].replica in NAMES
    assert all(last.replica == seen[0].replica for last in seen)
    last = seen[0]
    assert last.error == ""
    assert last.end_time.ToNanoseconds() >= last.start_time.ToNanoseconds()
    targets = {step.target for step in last.steps}
    assert {"expired_records", "records", "idle_transcripts", "default_audit_log"} <= targets

    # The operator's view of the same, from the other replica.
    shown = strata(
        "cleanup", "--status", "--server", second.process.target, cwd=tmp_path, COLUMNS="200"
    )
    assert shown.returncode == 0, shown.stderr
    assert f"last cleanup on {last.replica}" in shown.stdout
    assert "records of logs in" in shown.stdout

    # The leader is the replica the summary names, and only it removed anything:
    # the records went once, counted once, audited once each.
    texts = {name: replica.metrics() for name, replica in zip(NAMES, replicas, strict=True)}
    leaders = [name for name, text in texts.items() if gauge(text, "strata_cleanup_leader") == 1]
    assert leaders == [last.replica]
    removed = [
        _value(text, "strata_cleanup_removed_total", target="records") for text in texts.values()
    ]
    assert sorted(removed) == [0, len(ids)]
    retained = first.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="retention", page_size=100)
    )
    listed = [id for entry in retained.entries for id in entry.entity_ids]
    assert sorted(listed) == [f"logs/{id}" for id in ids]


def test_an_idle_transcript_is_sealed_and_its_follower_told(replicas) -> None:
    first, second = replicas
    ns = f"idle-{uuid.uuid4().hex[:8]}"
    idle = create_transcript(first.transcripts, namespace=ns)
    busy = create_transcript(first.transcripts, namespace=ns)
    append(first.transcripts, idle, ["hello"], namespace=ns)

    # Keep one transcript busy while the other idles past IDLE.
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.wait(IDLE / 4):
            append(first.transcripts, busy, ["still here"], namespace=ns)

    worker = threading.Thread(target=keep_busy)
    worker.start()
    try:
        call = second.transcripts.ReadTranscript(
            read_request(idle, namespace=ns, follow=True), timeout=60
        )
        stream = messages_until(call, Stream(), lambda s: "sealed" in s.events)
        call.cancel()
    finally:
        stop.set()
        worker.join()
    assert stream.seqs == [1]

    sealed = second.transcripts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=idle))
    assert sealed.sealed
    still = second.transcripts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=busy))
    assert not still.sealed
    seals = second.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="seal", page_size=100)
    )
    assert [(e.entity_id, e.actor) for e in seals.entries] == [(idle, "system")]
