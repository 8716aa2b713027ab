"""The `strata` client commands (audit, ...) as an operator runs them: subprocesses
against a live server."""

from __future__ import annotations

import time
from pathlib import Path

from google.protobuf import duration_pb2

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
)
from tests.contract.artifacts_support import text_log, upload
from tests.contract.helpers import to_struct
from tests.contract.test_integrity import run_sql
from tests.contract.transcript_helpers import append, create_transcript, transcript_stub
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


def test_search_prints_hits_of_every_kind_best_first(server: StrataProcess, tmp_path: Path) -> None:
    word = f"cli{time.time_ns()}"
    with server.channel() as channel:
        records_pb2_grpc.RecordServiceStub(channel).CreateRecord(
            records_pb2.CreateRecordRequest(
                collection="found", record_id="r1", data=to_struct({"note": f"{word} here"})
            )
        )
        transcripts = transcript_stub(channel)
        chat = create_transcript(transcripts, owner="ada")
        append(transcripts, chat, [f"said {word}"])
    result = strata("search", word, "--server", server.target, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "found/r1" in result.stdout and f"{chat}#1" in result.stdout
    owned = strata("search", word, "--owner", "ada", "--server", server.target, cwd=tmp_path)
    assert owned.returncode == 0 and "found/r1" not in owned.stdout and chat in owned.stdout
    bad = strata("search", word, "--kind", "records", "--server", server.target, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown kind 'records'" in bad.stderr
    none = strata("search", "nothing" + word, "--server", server.target, cwd=tmp_path)
    assert none.returncode == 0 and "nothing matches" in none.stderr


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


def test_index_create_list_drop(server: StrataProcess, tmp_path: Path) -> None:
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        for i in range(5):
            stub.CreateRecord(
                records_pb2.CreateRecordRequest(
                    collection="cli_idx", record_id=f"r{i}", data=to_struct({"colour": "red"})
                )
            )
    target = ("--server", server.target)
    made = strata("index", "create", "cli_idx", "data.colour", *target, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "data.colour" in made.stdout and "yes" in made.stdout
    listed = strata("index", "list", "cli_idx", *target, cwd=tmp_path)
    assert listed.returncode == 0 and "data.colour" in listed.stdout
    dropped = strata("index", "drop", "cli_idx", "data.colour", *target, cwd=tmp_path)
    assert dropped.returncode == 0, dropped.stderr
    empty = strata("index", "list", "cli_idx", *target, cwd=tmp_path)
    assert "data.colour" not in empty.stdout and "no indexes declared" in empty.stderr
    again = strata("index", "drop", "cli_idx", "data.colour", *target, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("strata: NOT_FOUND")
    bad = strata("index", "create", "cli_idx", "colour", *target, cwd=tmp_path)
    assert bad.returncode == 2 and "INVALID_ARGUMENT" in bad.stderr


def test_cleanup_dry_run_then_real(server: StrataProcess, tmp_path: Path) -> None:
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        stub.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace="cli-cleanup", collection="old", record_id="r1", data=to_struct({})
            )
        )
        admin_pb2_grpc.AdminServiceStub(channel).SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace="cli-cleanup",
                target=admin_pb2.RETENTION_TARGET_RECORDS,
                selector="old",
                max_age=duration_pb2.Duration(seconds=1),
            )
        )
    time.sleep(1.2)
    target = ("--server", server.target, "-n", "cli-cleanup")
    dry = strata("cleanup", "--dry-run", *target, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "cleanup: 1 would remove" in dry.stdout and "records of old" in dry.stdout
    real = strata("cleanup", *target, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert "cleanup: 1 removed" in real.stdout
    again = strata("cleanup", *target, cwd=tmp_path)
    assert "cleanup: 0 removed" in again.stdout


def test_cleanup_of_one_owner(server: StrataProcess, tmp_path: Path) -> None:
    ns = f"cli-own-{time.time_ns() % 10**9}"
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        for id, owner in (("a1", "ada"), ("a2", "ada"), ("b1", "bob")):
            stub.CreateRecord(
                records_pb2.CreateRecordRequest(
                    namespace=ns, collection="notes", record_id=id, owner=owner
                )
            )
        create_transcript(transcript_stub(channel), namespace=ns, owner="ada")
    target = ("--server", server.target, "-n", ns, "--owner", "ada")
    dry = strata("cleanup", "--dry-run", *target, cwd=tmp_path, COLUMNS="160")
    assert dry.returncode == 0, dry.stderr
    assert "cleanup: 3 would remove" in dry.stdout and "records of owner ada" in dry.stdout
    owned = strata("usage", *target, cwd=tmp_path, COLUMNS="160")
    assert owned.returncode == 0 and "notes" in owned.stdout and "transcripts" in owned.stdout
    real = strata("cleanup", *target, cwd=tmp_path, COLUMNS="160")
    assert real.returncode == 0, real.stderr
    assert "cleanup: 3 removed" in real.stdout
    with server.channel() as channel:
        found = records_pb2_grpc.RecordServiceStub(channel).BatchGetRecords(
            records_pb2.BatchGetRecordsRequest(namespace=ns, collection="notes", ids=["a1", "b1"])
        )
    assert [(r.id, r.owner) for r in found.records] == [("b1", "bob")]


def test_usage_table(server: StrataProcess, tmp_path: Path) -> None:
    with server.channel() as channel:
        stub = records_pb2_grpc.RecordServiceStub(channel)
        stub.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace="cli-usage", collection="notes", record_id="n1", data=to_struct({"a": 1})
            )
        )
    result = strata("usage", "--server", server.target, "-n", "cli-usage", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "notes" in line]
    assert "records" in line and ("7 B" in line or "8 B" in line)  # {"a":1} / {"a": 1}
    every = strata("usage", "--server", server.target, "--all", cwd=tmp_path)
    assert every.returncode == 0 and "cli-usage" in every.stdout and "total" in every.stdout


def test_usage_breaks_down_transcripts_artifacts_and_owner(
    server: StrataProcess, tmp_path: Path
) -> None:
    ns = f"cli-use-{time.time_ns() % 10**9}"
    with server.channel() as channel:
        ts = transcript_stub(channel)
        tid = create_transcript(ts, namespace=ns, owner="alice")
        append(ts, tid, ["hello"], namespace=ns)
        arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        for name in ("a.log", "b.log"):  # the same bytes twice: stored once
            upload(arts, text_log(200), namespace=ns, owner="bob", kind="log", name=name)
    result = strata("usage", "--server", server.target, "-n", ns, cwd=tmp_path, COLUMNS="160")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("transcripts" in line and " 1 " in line for line in lines), result.stdout
    assert any("entries" in line for line in lines)
    [artifacts, *_] = [line for line in lines if "artifacts" in line and "log" in line]
    assert " 2 " in artifacts and "KiB" in artifacts
    assert any("dedup saved" in line for line in lines)
    owned = strata(
        "usage", "--server", server.target, "-n", ns, "--owner", "bob", cwd=tmp_path, COLUMNS="160"
    )
    assert owned.returncode == 0 and "owner bob" in owned.stdout
    assert "transcripts" not in owned.stdout and "artifacts" in owned.stdout


def test_check_reports_and_repairs(server: StrataProcess, tmp_path: Path) -> None:
    ns = "cli-check"
    with server.channel() as channel:
        queue = queue_pb2_grpc.QueueServiceStub(channel)
        job = queue.Enqueue(queue_pb2.EnqueueRequest(namespace=ns, queue="q"))
    run_sql(server, "UPDATE jobs SET finish_time = update_time WHERE id = %s", (job.id,))
    target = ("--server", server.target, "-n", ns)
    found = strata("check", *target, cwd=tmp_path)
    assert found.returncode == 1, found.stderr
    assert "unfinished" in found.stdout and "1 left" in found.stdout
    fixed = strata("check", "--repair", *target, cwd=tmp_path)
    assert fixed.returncode == 0 and "1 repaired, 0 left" in fixed.stdout
    clean = strata("check", *target, cwd=tmp_path)
    assert clean.returncode == 0 and "0 problem(s)" in clean.stdout


def test_usage_shows_artifact_tiers_and_reindex_reports(
    server: StrataProcess, tmp_path: Path
) -> None:
    ns = f"cli-tier-{time.time_ns() % 10**9}"
    with server.channel() as channel:
        arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        upload(arts, text_log(300), namespace=ns, owner="bob", kind="log", name="a.log")
        upload(arts, text_log(50, seed=1), namespace=ns, owner="bob", kind="keep", name="b.log")
        admin_pb2_grpc.AdminServiceStub(channel).SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace=ns,
                target=admin_pb2.RETENTION_TARGET_ARCHIVE_ARTIFACTS,
                selector="log",
                max_age=duration_pb2.Duration(seconds=1),
            )
        )
    hot = strata("usage", "--server", server.target, "-n", ns, cwd=tmp_path, COLUMNS="160")
    assert hot.returncode == 0 and "artifact tier" not in hot.stdout, hot.stdout
    time.sleep(1.2)
    cleaned = strata("cleanup", "--server", server.target, "-n", ns, cwd=tmp_path, COLUMNS="160")
    assert cleaned.returncode == 0 and "archive_artifacts" in cleaned.stdout, cleaned.stdout
    result = strata("usage", "--server", server.target, "-n", ns, cwd=tmp_path, COLUMNS="160")
    tiers = [line for line in result.stdout.splitlines() if "artifact tier" in line and ns in line]
    assert len(tiers) == 2 and "hot" in tiers[0] and "archived" in tiers[1], result.stdout
    assert all(" 1 " in line for line in tiers)

    reindexed = strata("reindex", "--server", server.target, "-n", ns, cwd=tmp_path)
    assert reindexed.returncode == 0, reindexed.stderr
    assert "2 artifacts: 0 indexed, 2 already indexed" in reindexed.stdout
    rebuilt = strata("reindex", "--rebuild", "--server", server.target, "-n", ns, cwd=tmp_path)
    assert rebuilt.returncode == 0 and "2 indexed, 0 already" in rebuilt.stdout, rebuilt.stdout
