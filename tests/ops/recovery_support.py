"""What the backup and recovery rehearsals share: a small data set of every kind
written over a real channel, read back whole for comparison, and the integrity
report of a server."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    transcripts_pb2,
)
from tests.contract.artifacts_support import download, random_bytes, text_log, upload
from tests.contract.helpers import create, data_of, list_all, stubs_over
from tests.contract.transcript_helpers import (
    append,
    create_transcript,
    read_all,
    transcript_stub,
)

COLLECTION = "tickets"
TRANSCRIPT = "chat-1"


@dataclass
class DataSet:
    """Everything a server holds of the data set, as a client reads it."""

    records: dict[str, tuple[dict[str, Any], int]]
    entries: list[tuple[int, str, str]]
    artifacts: dict[str, tuple[str, int, bytes]]


def write_data_set(channel: grpc.Channel, tag: str = "") -> list[artifacts_pb2.Artifact]:
    """Records, a transcript with entries, and artifacts (one compressed, one raw)."""
    stubs = stubs_over(channel)
    for i in range(20):
        create(stubs, COLLECTION, f"t{tag}{i}", {"title": f"ticket {i}", "n": i})
    ts = transcript_stub(channel)
    transcript = create_transcript(ts, TRANSCRIPT + tag, owner="agents/a1")
    append(ts, transcript, [f"message {i} " * 20 for i in range(50)])
    arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    return [
        upload(arts, text_log(40_000, seed=len(tag)), name=f"build{tag}.log"),
        upload(arts, random_bytes(300_000), name=f"bundle{tag}.bin"),
    ]


def read_data_set(channel: grpc.Channel) -> DataSet:
    """The records, the transcripts' entries and every artifact's bytes."""
    stubs = stubs_over(channel)
    records = {r.id: (data_of(r), r.version) for r in list_all(stubs, COLLECTION)}
    ts = transcript_stub(channel)
    entries = []
    listed = ts.ListTranscripts(transcripts_pb2.ListTranscriptsRequest(page_size=100))
    for transcript in listed.transcripts:
        stream = read_all(ts, transcript.id)
        entries += [(e.seq, e.role, e.content) for e in stream.entries]
    arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    artifacts = {}
    for artifact in arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(page_size=100)).artifacts:
        _, data = download(arts, artifact.id)
        artifacts[artifact.id] = (artifact.sha256, artifact.size, data)
    return DataSet(records, entries, artifacts)


def integrity(channel: grpc.Channel, **fields: Any) -> admin_pb2.IntegrityReport:
    """The report of a check of every namespace."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.CheckIntegrityRequest(all_namespaces=True, **fields)
    *_, last = admin.CheckIntegrity(request, timeout=120)
    return last.report


def strata(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `strata` command as an operator does."""
    return subprocess.run(
        [sys.executable, "-m", "strata_server", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
