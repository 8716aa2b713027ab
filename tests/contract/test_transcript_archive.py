"""The archive tier of sealed transcripts over a real channel, on both shapes
(segments on local disk, or in the S3 bucket): an archive_transcripts policy and
RunCleanup archive, GetTranscript shows the tier, ReadTranscript streams the same
entries in the same batches, search and usage see it, RestoreTranscript brings it
back; both idempotent and audited."""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import Any

import grpc
import psycopg

from strata.v1 import admin_pb2, search_pb2, search_pb2_grpc
from strata.v1 import transcripts_pb2 as tpb
from tests.contract.archive_support import export, import_, rows
from tests.contract.artifacts_support import BlobView
from tests.contract.helpers import expect_error, seconds
from tests.contract.test_integrity import check
from tests.contract.transcript_helpers import (
    create_transcript,
    entry,
    read_all,
    transcript_stub,
)
from tests.support.server import StrataProcess

ARCHIVE = admin_pb2.RETENTION_TARGET_ARCHIVE_TRANSCRIPTS
ENTRIES = 3000
"""Entries of about 1 KiB each: the archive holds a few segments."""


def fill(ts: Any, ns: str, id: str) -> None:
    for start in range(0, ENTRIES, 1000):
        ts.AppendEntries(
            tpb.AppendEntriesRequest(
                namespace=ns,
                id=id,
                entries=[
                    entry(
                        f"line {seq} marker{seq} " + "lorem ipsum dolor " * (30 + seq % 50),
                        "user" if seq % 2 else "assistant",
                        {"n": seq, "tool": "grep"} if seq % 7 == 0 else None,
                    )
                    for seq in range(start + 1, start + 1001)
                ],
            )
        )
    ts.SealTranscript(tpb.SealTranscriptRequest(namespace=ns, id=id))


def reads(
    ts: Any, ns: str, id: str, starts: tuple[int, ...] = (0, 1777, -5)
) -> dict[tuple[int, int], Any]:
    """Every read the test compares: (entries, batch boundaries) by (from_seq, size)."""
    out = {}
    for from_seq in starts:
        for size in (0, 5000):
            stream = read_all(ts, id, namespace=ns, from_seq=from_seq, max_batch_bytes=size)
            assert stream.events[-1] == "sealed"
            out[(from_seq, size)] = (
                [e.SerializeToString() for e in stream.entries],
                [(b.entries[0].seq, b.next_seq) for b in stream.batches],
            )
    return out


def tier(ts: Any, ns: str, id: str) -> int:
    return ts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=id)).tier


def cleanup(stubs: Any, ns: str) -> dict[str, int]:
    *_, last = stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(namespace=ns))
    return {step.target: step.count for step in last.report.steps}


def tiers(stubs: Any, ns: str) -> admin_pb2.TranscriptTierUsage:
    [usage] = stubs.admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns)).namespaces
    return usage.transcript_tiers


def searched(stubs: Any, ts: Any, ns: str, word: str) -> tuple[list[int], list[int]]:
    own = ts.SearchTranscripts(tpb.SearchTranscriptsRequest(namespace=ns, query=word)).hits
    every = search_pb2_grpc.SearchServiceStub(stubs.channel).Search(
        search_pb2.SearchRequest(namespace=ns, query=word)
    )
    return [h.seq for h in own], [h.entry.seq for h in every.hits]


def test_archive_by_policy_read_search_restore(stubs):
    ns = f"arc-{uuid.uuid4().hex[:12]}"
    ts = transcript_stub(stubs.channel)
    id = create_transcript(ts, namespace=ns, owner="ann")
    fill(ts, ns, id)
    still_open = create_transcript(ts, namespace=ns, owner="ann")
    assert tier(ts, ns, id) == tpb.TRANSCRIPT_TIER_HOT
    hot = reads(ts, ns, id)
    hot_tiers = tiers(stubs, ns)
    assert (hot_tiers.hot_transcripts, hot_tiers.archived_transcripts) == (2, 0)

    stubs.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(namespace=ns, target=ARCHIVE, max_age=seconds(1))
    )
    time.sleep(1.2)
    assert cleanup(stubs, ns)["archive_transcripts"] == 1
    got = ts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=id))
    assert got.tier == tpb.TRANSCRIPT_TIER_ARCHIVED and got.next_seq == ENTRIES + 1
    assert tier(ts, ns, still_open) == tpb.TRANSCRIPT_TIER_HOT
    assert reads(ts, ns, id) == hot
    assert searched(stubs, ts, ns, "marker1777") == ([1777], [1777])
    archived = tiers(stubs, ns)
    assert (archived.hot_transcripts, archived.archived_transcripts) == (1, 1)
    assert archived.archived_bytes == hot_tiers.hot_bytes and archived.hot_bytes == 0
    assert 0 < archived.archived_stored_bytes < archived.archived_bytes
    assert cleanup(stubs, ns)["archive_transcripts"] == 0  # archived once

    restored = ts.RestoreTranscript(tpb.RestoreTranscriptRequest(namespace=ns, id=id))
    assert restored.tier == tpb.TRANSCRIPT_TIER_HOT and restored.next_seq == ENTRIES + 1
    again = ts.RestoreTranscript(tpb.RestoreTranscriptRequest(namespace=ns, id=id))
    assert again == restored
    assert reads(ts, ns, id) == hot
    assert searched(stubs, ts, ns, "marker1777") == ([1777], [1777])
    assert tiers(stubs, ns) == hot_tiers
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, entity="transcript")
    ).entries
    actions = [e.action for e in audit if e.entity_id == id]
    assert actions.count("archive") == 1 and actions.count("restore") == 1

    # Archived again (the same segments), then deleted: gone in either tier.
    assert cleanup(stubs, ns)["archive_transcripts"] == 1
    ts.DeleteTranscript(tpb.DeleteTranscriptRequest(namespace=ns, id=id))
    expect_error(
        lambda: ts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=id)),
        grpc.StatusCode.NOT_FOUND,
    )
    assert searched(stubs, ts, ns, "marker1777") == ([], [])


def test_restore_bad_input_and_unknown(stubs):
    ts = transcript_stub(stubs.channel)
    expect_error(
        lambda: ts.RestoreTranscript(tpb.RestoreTranscriptRequest(id="no such/id")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="id",
    )
    expect_error(
        lambda: ts.RestoreTranscript(tpb.RestoreTranscriptRequest(id=f"t{uuid.uuid4().hex}")),
        grpc.StatusCode.NOT_FOUND,
    )


def test_archive_policy_takes_no_selector(stubs):
    expect_error(
        lambda: stubs.admin.SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace="default", target=ARCHIVE, selector="x", max_age=seconds(60)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="selector",
    )


def test_export_reads_archived_entries_and_import_makes_them_hot(stubs):
    ns = f"arc-{uuid.uuid4().hex[:12]}"
    ts = transcript_stub(stubs.channel)
    id = create_transcript(ts, namespace=ns)
    fill(ts, ns, id)
    hot_one = create_transcript(ts, namespace=ns)
    ts.AppendEntries(
        tpb.AppendEntriesRequest(namespace=ns, id=hot_one, entries=[entry("kept words", "user")])
    )
    hot = reads(ts, ns, id)
    before = export(stubs.channel, ns)
    stubs.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(namespace=ns, target=ARCHIVE, max_age=seconds(1))
    )
    time.sleep(1.2)
    assert cleanup(stubs, ns)["archive_transcripts"] == 1
    after = export(stubs.channel, ns)
    grown = {"audit"}  # the policy and the archive are audited
    assert {k: v for k, v in after.summary.counts.items() if k not in grown} == {
        k: v for k, v in before.summary.counts.items() if k not in grown
    }
    assert sorted(rows(after.data, "entries"), key=_entry_key) == sorted(
        rows(before.data, "entries"), key=_entry_key
    )
    # Into another namespace: the archived transcript comes back hot, read alike.
    copy = f"arc-{uuid.uuid4().hex[:12]}"
    import_(stubs.channel, after.data, copy)
    assert tier(ts, copy, id) == tpb.TRANSCRIPT_TIER_HOT
    assert reads(ts, copy, id) == hot
    assert searched(stubs, ts, copy, "marker1777") == ([1777], [1777])
    # Over itself, overwriting: the archived transcript is made hot.
    import_(stubs.channel, after.data, ns, admin_pb2.CONFLICT_POLICY_OVERWRITE)
    assert tier(ts, ns, id) == tpb.TRANSCRIPT_TIER_HOT
    assert reads(ts, ns, id) == hot
    assert searched(stubs, ts, ns, "kept") == ([1], [1])


def _entry_key(row: dict[str, Any]) -> tuple[str, int]:
    return row["transcript_id"], row["seq"]


def segment_names(server: StrataProcess, ns: str) -> list[str]:
    """The blobs the namespace's segments name, read from the server's database."""
    query = "SELECT sha256 FROM transcript_segments WHERE namespace = %s ORDER BY first_seq"
    if server.database_url.startswith("sqlite"):
        path = server.database_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            return [row[0] for row in conn.execute(query.replace("%s", "?"), (ns,))]
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(query, (ns,))]  # type: ignore[arg-type]


def test_integrity_names_segments_and_finds_a_lost_one(stubs, server, shape, request):
    blobs = BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)
    ns = f"arc-{uuid.uuid4().hex[:12]}"
    ts = transcript_stub(stubs.channel)
    id = create_transcript(ts, namespace=ns)
    fill(ts, ns, id)
    stubs.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(namespace=ns, target=ARCHIVE, max_age=seconds(1))
    )
    time.sleep(1.2)
    assert cleanup(stubs, ns)["archive_transcripts"] == 1
    names = segment_names(server, ns)
    assert len(names) >= 2 and all(blobs.has(name) for name in names)
    every = check(stubs, all_namespaces=True)
    orphans = {f.entity_id for f in every.findings if f.entity == "blob"}
    assert not orphans & set(names)
    assert check(stubs, namespace=ns).findings == []

    blobs.remove(names[0])
    [lost] = check(stubs, namespace=ns).findings
    assert (lost.check, lost.entity, lost.entity_id) == ("blobs", "transcript", id)
    assert names[0] in lost.problem and not lost.repairable
    ts.DeleteTranscript(tpb.DeleteTranscriptRequest(namespace=ns, id=id))
