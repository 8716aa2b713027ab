"""AdminService.CheckIntegrity over a real channel, on both shapes: damage planted
in the server's own database with plain SQL is found, the safe repairs fix it, and
a second check comes back clean."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import grpc
import psycopg

from strata.v1 import admin_pb2, records_pb2
from strata.v1 import transcripts_pb2 as tpb
from strata_server.core.index_paths import index_name
from tests.contract.helpers import enqueue, expect_error, lease, queue_stub, to_struct
from tests.contract.transcript_helpers import append, create_transcript, transcript_stub
from tests.support.server import StrataProcess


def run_sql(server: StrataProcess, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Damage the server's database behind its back."""
    if server.database_url.startswith("sqlite"):
        with sqlite3.connect(server.database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement.replace("%s", "?"), params)
        return
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def check(stubs: Any, **fields: Any) -> admin_pb2.IntegrityReport:
    events = list(stubs.admin.CheckIntegrity(admin_pb2.CheckIntegrityRequest(**fields)))
    *progress, last = events
    assert progress and all(event.HasField("progress") for event in progress)
    assert last.HasField("report")
    return last.report


def test_planted_damage_is_found_and_repaired(stubs, server):
    ns = f"int-{uuid.uuid4().hex[:10]}"
    qs = queue_stub(stubs.channel)
    broken = enqueue(qs, "q", namespace=ns)
    lease(qs, "q", namespace=ns)
    stray = enqueue(qs, "q2", namespace=ns)
    key = f"k{uuid.uuid4().hex[:8]}"
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=ns, collection="docs", record_id="d1", data=to_struct({key: "x"})
        )
    )
    list(
        stubs.admin.CreateIndex(
            admin_pb2.CreateIndexRequest(namespace=ns, collection="docs", field=f"data.{key}")
        )
    )
    assert check(stubs, namespace=ns).findings == []

    run_sql(server, "UPDATE jobs SET lease_token = NULL WHERE id = %s", (broken.id,))
    run_sql(server, "UPDATE jobs SET lease_token = 'stray' WHERE id = %s", (stray.id,))
    run_sql(server, f'DROP INDEX "{index_name((key,))}"')

    found = check(stubs, namespace=ns)
    problems = {(f.check, f.entity_id): f for f in found.findings}
    assert set(problems) == {
        ("jobs", broken.id),
        ("jobs", stray.id),
        ("indexes", f"docs/data.{key}"),
    }
    assert all(f.repairable and not f.repaired for f in found.findings)
    assert "without a lease token" in problems[("jobs", broken.id)].problem
    assert dict((c.check, c.count) for c in found.checked)["jobs"] >= 2

    repaired = check(stubs, namespace=ns, repair=True)
    assert repaired.repaired == 3 and all(f.repaired for f in repaired.findings)
    assert check(stubs, namespace=ns).findings == []
    # The broken lease was given back: the job can be leased again.
    [again] = lease(qs, "q", namespace=ns)
    assert again.id == broken.id
    indexes = stubs.admin.ListIndexes(admin_pb2.ListIndexesRequest(namespace=ns)).indexes
    assert [i.ready for i in indexes] == [True]


def test_bad_requests(stubs):
    expect_error(
        lambda: check(stubs, namespace="x", all_namespaces=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: check(stubs, namespace="NOPE!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )


def test_all_namespaces_checks_the_database_file(stubs, shape):
    report = check(stubs, all_namespaces=True)
    checks = {c.check for c in report.checked}
    assert {"jobs", "indexes", "transcripts"} <= checks
    if shape == "sqlite":
        assert "database_file" in checks
        assert not [f for f in report.findings if f.check == "database_file"]


def entries_of(ts: Any, ns: str, id: str) -> list[tuple[int, str]]:
    read = ts.ReadTranscript(tpb.ReadTranscriptRequest(namespace=ns, id=id))
    return [(e.seq, e.content) for m in read if m.HasField("batch") for e in m.batch.entries]


def test_planted_transcript_damage_is_found_and_the_safe_part_repaired(stubs, server, shape):
    ns = f"int-{uuid.uuid4().hex[:10]}"
    ts = transcript_stub(stubs.channel)
    ahead, behind, gapped, orphaned = (create_transcript(ts, namespace=ns) for _ in range(4))
    append(ts, ahead, ["a1", "a2", "a3"], namespace=ns)
    append(ts, behind, ["b1", "b2"], namespace=ns)
    append(ts, gapped, ["g1", "g2", "g3"], namespace=ns)
    word = f"w{uuid.uuid4().hex[:10]}"
    append(ts, orphaned, [f"{word} o1", "o2"], namespace=ns)
    assert check(stubs, namespace=ns).findings == []

    where = "WHERE namespace = %s AND id = %s"
    run_sql(server, f"UPDATE transcripts SET next_seq = 10, size_bytes = 5 {where}", (ns, ahead))
    run_sql(server, f"UPDATE transcripts SET next_seq = 2 {where}", (ns, behind))
    run_sql(
        server,
        "DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = %s AND seq = 2",
        (ns, gapped),
    )
    run_sql(server, f"DELETE FROM transcripts {where}", (ns, orphaned))

    found = check(stubs, namespace=ns)
    problems = {(f.entity, f.entity_id): f for f in found.findings}
    assert set(problems) == {
        ("transcript", ahead),
        ("transcript", behind),
        ("transcript", gapped),
        ("transcript_entries", orphaned),
    }
    assert {f.check for f in found.findings} == {"transcripts"}
    assert "next_seq=10" in problems[("transcript", ahead)].problem
    assert "next_seq=4" in problems[("transcript", ahead)].problem
    assert "gaps" in problems[("transcript", gapped)].problem
    assert "2 entries whose transcript" in problems[("transcript_entries", orphaned)].problem
    assert [f.repairable for f in found.findings].count(False) == 1
    assert not problems[("transcript", gapped)].repairable
    assert dict((c.check, c.count) for c in found.checked)["transcripts"] == 3

    repaired = check(stubs, namespace=ns, repair=True)
    assert repaired.repaired == 3
    assert [(f.entity_id, f.repaired) for f in repaired.findings if not f.repaired] == [
        (gapped, False)
    ]
    [left] = check(stubs, namespace=ns).findings
    assert left.entity_id == gapped

    # The counters are the entries' again: appends continue without a gap.
    assert append(ts, ahead, ["a4"], namespace=ns).first_seq == 4
    assert append(ts, behind, ["b3"], namespace=ns).first_seq == 3
    assert entries_of(ts, ns, ahead) == [(1, "a1"), (2, "a2"), (3, "a3"), (4, "a4")]
    assert entries_of(ts, ns, behind) == [(1, "b1"), (2, "b2"), (3, "b3")]
    got = ts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=ahead))
    assert got.next_seq == 5
    # The orphans are gone, from search too: a new transcript of that id starts empty.
    hits = ts.SearchTranscripts(tpb.SearchTranscriptsRequest(namespace=ns, query=word)).hits
    assert list(hits) == []
    create_transcript(ts, orphaned, namespace=ns)
    assert append(ts, orphaned, ["fresh"], namespace=ns).first_seq == 1
    assert entries_of(ts, ns, orphaned) == [(1, "fresh")]

    # What cannot be repaired stays for an operator; deleting the transcript clears it.
    ts.DeleteTranscript(tpb.DeleteTranscriptRequest(namespace=ns, id=gapped))
    assert check(stubs, namespace=ns).findings == []

    # SQLite: the entry deleted behind the server's back is still in the full-text
    # index; a check of every namespace finds that, and rebuilds the index.
    stale = [f for f in check(stubs, all_namespaces=True).findings if f.entity == "search_index"]
    if shape == "sqlite":
        assert [(f.check, f.repairable) for f in stale] == [("transcripts", True)]
        fixed = check(stubs, all_namespaces=True, repair=True).findings
        assert [f.repaired for f in fixed if f.entity == "search_index"] == [True]
        again = check(stubs, all_namespaces=True).findings
        assert not [f for f in again if f.entity == "search_index"]
    else:
        assert stale == []  # PostgreSQL's tsvector lives in the entry's own row
