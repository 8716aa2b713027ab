"""An operator with grpcurl and no proto files: reflection is enough to list and call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
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


def describe(server, symbol: str) -> str:
    result = subprocess.run(
        [str(GRPCURL), "-plaintext", server.target, "describe", symbol],
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
        "strata.v1.TranscriptService",
        "strata.v1.SearchService",
        "grpc.health.v1.Health",
    } <= services


def test_grpcurl_searches_across_kinds_by_kind_name(server, collection):
    word = f"g{uuid.uuid4().hex[:10]}"
    body = {"collection": collection, "record_id": "s1", "data": {"note": f"about {word}"}}
    grpcurl(server, "-d", json.dumps(body), "strata.v1.RecordService/CreateRecord")
    request = {"query": word, "kinds": ["SEARCH_KIND_RECORD"]}
    found = json.loads(grpcurl(server, "-d", json.dumps(request), "strata.v1.SearchService/Search"))
    [hit] = found["hits"]
    assert hit["kind"] == "SEARCH_KIND_RECORD"
    assert hit["record"] == {"collection": collection, "id": "s1"}
    assert f"**{word}**" in hit["snippet"]


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


def test_grpcurl_appends_and_tails_a_transcript(server):
    transcript_id = f"g{uuid.uuid4().hex[:12]}"
    grpcurl(
        server,
        "-d",
        json.dumps({"transcript_id": transcript_id, "owner": "ada"}),
        "strata.v1.TranscriptService/CreateTranscript",
    )
    body = {
        "id": transcript_id,
        "entries": [
            {"role": "user", "content": "Where is my refund?"},
            {"role": "tool:orders", "content": "", "data": {"order": "A-17"}},
        ],
    }
    appended = json.loads(
        grpcurl(server, "-d", json.dumps(body), "strata.v1.TranscriptService/AppendEntries")
    )
    assert appended == {"firstSeq": "1", "nextSeq": "3"}
    # A live tail: the last entry, then whatever is appended, until grpcurl's
    # -max-time ends it (the stream itself would stay open).
    tail = subprocess.Popen(
        [
            str(GRPCURL),
            "-plaintext",
            "-max-time",
            "2",
            "-d",
            json.dumps({"id": transcript_id, "from_seq": -1, "follow": True}),
            server.target,
            "strata.v1.TranscriptService/ReadTranscript",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.8)
    grpcurl(
        server,
        "-d",
        json.dumps({"id": transcript_id, "entries": [{"role": "assistant", "content": "Done."}]}),
        "strata.v1.TranscriptService/AppendEntries",
    )
    out, _ = tail.communicate(timeout=30)
    decoder = json.JSONDecoder()
    messages, rest = [], out.strip()
    while rest:
        message, end = decoder.raw_decode(rest)
        messages.append(message)
        rest = rest[end:].strip()
    kinds = [next(iter(m)) for m in messages]
    assert kinds == ["batch", "upToDate", "batch", "upToDate"], messages
    assert [e["seq"] for e in messages[0]["batch"]["entries"]] == ["2"]
    assert messages[2]["batch"]["entries"][0]["content"] == "Done."


def test_grpcurl_usage_of_an_owner(server):
    """The cookbook's GetUsage by owner: that owner's transcripts, no records."""
    ns = f"g{uuid.uuid4().hex[:12]}"
    grpcurl(
        server,
        "-d",
        json.dumps({"namespace": ns, "transcript_id": "t1", "owner": "ada"}),
        "strata.v1.TranscriptService/CreateTranscript",
    )
    found = json.loads(
        grpcurl(
            server,
            "-d",
            json.dumps({"namespace": ns, "owner": "ada"}),
            "strata.v1.AdminService/GetUsage",
        )
    )
    [usage] = found["namespaces"]
    assert usage["transcriptCount"] == "1" and "recordCount" not in usage


def test_grpcurl_retention_of_sealed_transcripts_and_artifacts(server):
    """The cookbook's new retention targets, by enum name, then a dry run."""
    ns = f"g{uuid.uuid4().hex[:12]}"
    for body in (
        {"target": "RETENTION_TARGET_SEALED_TRANSCRIPTS", "max_age": "2592000s"},
        {"target": "RETENTION_TARGET_ARTIFACTS", "selector": "log", "max_age": "1209600s"},
    ):
        saved = json.loads(
            grpcurl(
                server,
                "-d",
                json.dumps({"namespace": ns, **body}),
                "strata.v1.AdminService/SetRetentionPolicy",
            )
        )
        assert saved["target"] == body["target"]
    out = grpcurl(
        server,
        "-d",
        json.dumps({"namespace": ns, "dry_run": True}),
        "strata.v1.AdminService/RunCleanup",
    )
    report = json.loads("[" + out.replace("}\n{", "},\n{") + "]")[-1]["report"]
    assert {step["target"] for step in report["steps"]} >= {"sealed_transcripts", "artifacts"}


def test_grpcurl_describe_prints_each_rpcs_comment_and_codes(server):
    """Reflection serves descriptors with source info, so describe is documentation."""
    from google.protobuf import descriptor_pb2

    from strata_server.api.reflection import documented_files

    for service in (
        "RecordService",
        "TransactionService",
        "QueueService",
        "TranscriptService",
        "ArtifactService",
        "CacheService",
        "AdminService",
    ):
        described = describe(server, f"strata.v1.{service}")
        assert f"service {service} {{" in described
        # Every RPC line is preceded by its comment, as written in the .proto.
        lines = described.splitlines()
        rpcs = [i for i, line in enumerate(lines) if line.strip().startswith("rpc ")]
        assert rpcs, described
        for i in rpcs:
            assert lines[i - 1].strip().startswith("//"), (service, lines[i])
        if service == "RecordService":
            get = next(i for i in rpcs if "rpc GetRecord " in lines[i])
            assert "NOT_FOUND" in lines[get - 1], lines[get - 1]
    # The comments come from the committed descriptor set, which holds them.
    files = documented_files()
    records = descriptor_pb2.FileDescriptorProto.FromString(files["strata/v1/records.proto"])
    assert records.source_code_info.location
