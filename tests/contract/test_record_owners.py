"""Records' owners over a real channel, on both shapes: set on create, update and
Commit, returned everywhere a record is, filtered and ordered by, counted by
GetUsage, exported with an owner's archive, and removed by an owner's cleanup."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import grpc
import pytest

from strata.v1 import admin_pb2, artifacts_pb2_grpc, records_pb2, transcripts_pb2
from tests.contract.archive_support import export, gz_lines, import_, members, rebuild, rows
from tests.contract.artifacts_support import random_bytes, upload
from tests.contract.helpers import (
    commit,
    count,
    create,
    create_write,
    expect_error,
    get,
    list_all,
    list_ids,
    list_page,
    to_struct,
    update,
    update_write,
)
from tests.contract.test_indexes import plan
from tests.contract.transcript_helpers import (
    Stream,
    append,
    create_transcript,
    messages_until,
    read_request,
    transcript_stub,
)
from tests.support.server import StrataProcess

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def ns() -> str:
    return f"own-{uuid.uuid4().hex[:12]}"


def usage(stubs: Any, ns: str, owner: str = "") -> list[admin_pb2.NamespaceUsage]:
    request = admin_pb2.GetUsageRequest(namespace=ns, owner=owner)
    return list(stubs.admin.GetUsage(request).namespaces)


def owners(records: Any) -> dict[str, str]:
    return {record.id: record.owner for record in records}


def test_owner_round_trip_on_create_update_and_commit(stubs: Any, collection: str) -> None:
    made = create(stubs, collection, "a", {"n": 1}, owner="ada")
    assert made.owner == "ada"
    assert get(stubs, collection, "a").owner == "ada"
    assert get(stubs, collection, "a").owner == "ada"  # again: from the cache, if any
    assert create(stubs, collection, "none", {}).owner == ""

    # Unset keeps the owner, on a full replace as with a mask.
    assert update(stubs, collection, "a", {"n": 2}).owner == "ada"
    assert update(stubs, collection, "a", {"n": 3}, ["data.n"]).owner == "ada"
    assert update(stubs, collection, "a", {"n": 4}, ["data.n"], owner="bob").owner == "bob"
    assert get(stubs, collection, "a").owner == "bob"
    cleared = update(stubs, collection, "a", {"n": 5}, owner="")
    assert cleared.owner == "" and cleared.version == 5
    assert get(stubs, collection, "a").owner == ""
    upserted = update(stubs, collection, "new", {"n": 1}, allow_missing=True, owner="cy")
    assert upserted.owner == "cy" and upserted.version == 1

    # A retried create answers with the stored result, owner included.
    first = create(stubs, collection, "idem", {}, owner="dee", request_id="own-idem-1")
    again = create(stubs, collection, "idem", {}, owner="dee", request_id="own-idem-1")
    assert first == again and again.owner == "dee"

    result = commit(
        stubs,
        [
            create_write(collection, "c1", {"k": 1}, owner="eve"),
            update_write(collection, "none", {"k": 2}, owner="eve"),
            update_write(collection, "new", {"k": 3}),
        ],
    )
    assert [r.record.owner for r in result.results] == ["eve", "eve", "cy"]
    found = stubs.records.BatchGetRecords(
        records_pb2.BatchGetRecordsRequest(collection=collection, ids=["c1", "none", "new", "a"])
    )
    assert owners(found.records) == {"c1": "eve", "none": "eve", "new": "cy", "a": ""}
    assert owners(list_all(stubs, collection))["c1"] == "eve"

    # The audit log says when the owner changed.
    entries = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(entity="record", entity_id=f"{collection}/a")
    ).entries
    changed = [list(entry.changed_fields) for entry in reversed(entries)]
    assert [("owner" in fields) for fields in changed] == [True, False, False, True, True]


def test_filter_and_order_by_owner(stubs: Any, collection: str) -> None:
    for id, owner in [("r1", "ada"), ("r2", "bob"), ("r3", ""), ("r4", "ada"), ("r5", "")]:
        create(stubs, collection, id, {"n": int(id[1])}, owner=owner)
    assert list_ids(stubs, collection, filter='owner = "ada"') == ["r1", "r4"]
    assert list_ids(stubs, collection, filter='owner = ""') == ["r3", "r5"]
    assert list_ids(stubs, collection, filter="owner = null") == ["r3", "r5"]
    assert list_ids(stubs, collection, filter='owner != ""') == ["r1", "r2", "r4"]
    assert list_ids(stubs, collection, filter="owner:*") == ["r1", "r2", "r4"]
    assert list_ids(stubs, collection, filter='NOT owner = "ada"') == ["r2", "r3", "r5"]
    assert list_ids(stubs, collection, filter='owner = "ada" AND data.n > 1') == ["r4"]
    assert list_ids(stubs, collection, filter='owner = "nobody"') == []
    assert count(stubs, collection, 'owner = "ada" OR owner = "bob"') == 3
    assert count(stubs, collection, 'owner = ""') == 2

    # Ordered by owner, unowned first, one record a page: keyset paging over NULLs.
    ids, token = [], ""
    while True:
        page = list_page(stubs, collection, order_by="owner desc", page_size=1, page_token=token)
        ids += [record.id for record in page.records]
        token = page.next_page_token
        if not token:
            break
    assert ids == ["r2", "r1", "r4", "r3", "r5"]
    assert list_ids(stubs, collection, order_by="owner") == ["r3", "r5", "r1", "r4", "r2"]


@pytest.mark.slow
def test_an_owner_filter_is_served_by_the_owner_index(
    stubs: Any, server: StrataProcess, collection: str
) -> None:
    # Enough rows that PostgreSQL's planner prefers an index to reading the table.
    for start in range(0, 3000, 500):
        writes = [
            create_write(collection, f"r{i:04}", {"n": i}, owner="ada" if i % 500 == 7 else "")
            for i in range(start, start + 500)
        ]
        commit(stubs, writes)
    text = 'owner = "ada"'
    used = plan(server, collection, text)
    assert "records_owner" in used, used
    assert list_ids(stubs, collection, filter=text) == [f"r{i:04}" for i in range(7, 3000, 500)]


def test_bad_owner_values_are_invalid_argument(stubs: Any, collection: str) -> None:
    too_long = "x" * 257
    expect_error(lambda: create(stubs, collection, "a", owner=too_long), INVALID, field="owner")
    expect_error(lambda: create(stubs, collection, "a", owner="tab\there"), INVALID, field="owner")
    create(stubs, collection, "a", owner="x" * 256)  # the longest owner
    expect_error(lambda: update(stubs, collection, "a", owner=too_long), INVALID, field="owner")
    assert get(stubs, collection, "a").owner == "x" * 256
    expect_error(
        lambda: commit(
            stubs,
            [create_write(collection, "b", owner="ok"), create_write(collection, "c", owner="\n")],
        ),
        INVALID,
        field="writes[1].create.owner",
    )
    expect_error(
        lambda: commit(stubs, [update_write(collection, "a", {}, owner=too_long)]),
        INVALID,
        field="writes[0].update.owner",
    )
    assert list_ids(stubs, collection) == ["a"]  # nothing of the refused commits
    # The wrong type in a filter, and fields below owner.
    expect_error(lambda: list_ids(stubs, collection, filter="owner = 5"), INVALID, field="filter")
    expect_error(lambda: count(stubs, collection, "owner = true"), INVALID, field="filter")
    expect_error(
        lambda: list_ids(stubs, collection, filter='owner.x = "a"'), INVALID, field="filter"
    )


def _owned_content(stubs: Any, ns: str) -> None:
    """alice: three records in two collections, a transcript with entries and an
    artifact; bob: a record, a transcript and an artifact of the same bytes."""
    for collection, id, owner in [
        ("notes", "n1", "alice"),
        ("notes", "n2", "alice"),
        ("tasks", "t1", "alice"),
        ("notes", "n3", "bob"),
        ("notes", "n4", ""),
    ]:
        stubs.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns,
                collection=collection,
                record_id=id,
                data=to_struct({"text": "hello"}),
                owner=owner,
            )
        )
    ts = transcript_stub(stubs.channel)
    chat = create_transcript(ts, "chat-a", namespace=ns, owner="alice")
    append(ts, chat, ["hi", "there"], role="user", namespace=ns)
    create_transcript(ts, "chat-b", namespace=ns, owner="bob")
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    blob = random_bytes(2000)
    upload(arts, blob, namespace=ns, owner="alice", kind="log", name="a.log")
    upload(arts, blob, namespace=ns, owner="bob", kind="log", name="b.log")


def test_usage_of_one_owner_counts_its_records(stubs: Any, ns: str) -> None:
    _owned_content(stubs, ns)
    [alice] = usage(stubs, ns, "alice")
    assert alice.record_count == 3
    assert {c.collection: c.record_count for c in alice.collections} == {"notes": 2, "tasks": 1}
    assert alice.record_bytes == sum(c.record_bytes for c in alice.collections) > 0
    assert (alice.transcript_count, alice.entry_count, alice.artifact_count) == (1, 2, 1)
    assert alice.job_count == 0
    [every] = usage(stubs, ns)
    assert every.record_count == 5
    [bob] = usage(stubs, ns, "bob")
    assert (bob.record_count, bob.transcript_count, bob.artifact_count) == (1, 1, 1)


def test_export_of_one_owner_includes_its_records(server: StrataProcess, stubs: Any) -> None:
    ns, target = f"own-{uuid.uuid4().hex[:12]}", f"own-{uuid.uuid4().hex[:12]}"
    _owned_content(stubs, ns)
    with server.channel() as channel:
        archive = export(channel, ns, owner="alice")
        records = rows(archive.data, "records")
        assert [(r["collection"], r["id"], r["owner"]) for r in records] == [
            ("notes", "n1", "alice"),
            ("notes", "n2", "alice"),
            ("tasks", "t1", "alice"),
        ]
        assert archive.summary.counts["records"] == 3
        assert [r["id"] for r in rows(archive.data, "transcripts")] == ["chat-a"]
        audited = {(r["entity"], r["entity_id"]) for r in rows(archive.data, "audit")}
        assert ("record", "notes/n1") in audited and ("record", "notes/n3") not in audited
        assert ("transcript", "chat-a") in audited and ("transcript", "chat-b") not in audited

        imported = import_(channel, archive.data, target)
        assert imported.counts["records"].imported == 3
    copied = stubs.records.GetRecord(
        records_pb2.GetRecordRequest(namespace=target, collection="notes", id="n1")
    )
    assert copied.owner == "alice"


def test_an_archive_owner_of_the_wrong_type_is_refused(server: StrataProcess, stubs: Any) -> None:
    ns, target = f"own-{uuid.uuid4().hex[:12]}", f"own-{uuid.uuid4().hex[:12]}"
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(namespace=ns, collection="c", record_id="r", owner="ada")
    )
    with server.channel() as channel:
        data = export(channel, ns).data
        for bad in (b'"owner":5', b'"owner":"' + b"x" * 257 + b'"'):
            lines = gzip.decompress(members(data)["records.jsonl.gz"]).splitlines()
            member = gz_lines([line.replace(b'"owner":"ada"', bad) for line in lines])
            damaged = rebuild(data, {"records.jsonl.gz": member})
            expect_error(lambda damaged=damaged: import_(channel, damaged, target), INVALID)
    missing = stubs.records.BatchGetRecords(
        records_pb2.BatchGetRecordsRequest(namespace=target, collection="c", ids=["r"])
    )
    assert list(missing.missing_ids) == ["r"]


def _cleanup(stubs: Any, **fields: Any) -> admin_pb2.CleanupReport:
    events = list(
        stubs.admin.RunCleanup(
            admin_pb2.RunCleanupRequest(**fields), metadata=[("x-strata-actor", "ops")]
        )
    )
    *progress, last = events
    assert progress and all(event.HasField("progress") for event in progress)
    return last.report


def test_owner_cleanup_dry_run_then_real_run(stubs: Any, ns: str) -> None:
    _owned_content(stubs, ns)
    before = stubs.records.GetRecord(
        records_pb2.GetRecordRequest(namespace=ns, collection="notes", id="n1")
    )  # cached now, on the shape with a cache
    assert before.owner == "alice"

    dry = _cleanup(stubs, namespace=ns, owner="alice", dry_run=True)
    assert dry.dry_run and dry.total == 5
    assert [(s.target, s.selector, s.count) for s in dry.steps] == [
        ("owner_transcripts", "alice", 1),
        ("owner_artifacts", "alice", 1),
        ("owner_records", "alice", 3),
    ]
    [still] = usage(stubs, ns, "alice")
    assert (still.record_count, still.transcript_count, still.artifact_count) == (3, 1, 1)

    done = _cleanup(stubs, namespace=ns, owner="alice")
    assert not done.dry_run and [s.count for s in done.steps] == [1, 1, 3]
    [gone] = usage(stubs, ns, "alice")
    assert (gone.record_count, gone.transcript_count, gone.artifact_count) == (0, 0, 0)
    expect_error(
        lambda: stubs.records.GetRecord(
            records_pb2.GetRecordRequest(namespace=ns, collection="notes", id="n1")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    ts = transcript_stub(stubs.channel)
    expect_error(
        lambda: ts.GetTranscript(transcripts_pb2.GetTranscriptRequest(namespace=ns, id="chat-a")),
        grpc.StatusCode.NOT_FOUND,
    )
    # Everyone else's data stays.
    [rest] = usage(stubs, ns)
    assert (rest.record_count, rest.transcript_count, rest.artifact_count) == (2, 1, 1)
    assert rest.blobs.blob_count == 1  # bob's artifact still names the shared blob

    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="owner_cleanup", page_size=100)
    ).entries
    assert sorted((e.entity, e.entity_id) for e in audit) == [
        ("artifact", audit_artifact_id(audit)),
        ("record", "notes/n1"),
        ("record", "notes/n2"),
        ("record", "tasks/t1"),
        ("transcript", "chat-a"),
    ]
    assert {e.actor for e in audit} == {"ops"}

    again = _cleanup(stubs, namespace=ns, owner="alice")
    assert again.total == 0


def test_an_owner_cleanup_ends_the_follows_of_its_transcripts(stubs: Any, ns: str) -> None:
    ts = transcript_stub(stubs.channel)
    chat = create_transcript(ts, namespace=ns, owner="alice")
    append(ts, chat, ["hi"], namespace=ns)
    # The deadline is far below the streams' safety re-check (300 s by default), so
    # only the cleanup's wakeup can end the follow in time.
    call = ts.ReadTranscript(read_request(chat, namespace=ns, follow=True), timeout=20)
    messages_until(call, Stream(), lambda stream: "up_to_date" in stream.events)
    _cleanup(stubs, namespace=ns, owner="alice")
    with pytest.raises(grpc.RpcError) as ended:
        for _ in call:
            pass
    assert ended.value.code() == grpc.StatusCode.NOT_FOUND, ended.value.details()


def audit_artifact_id(entries: Any) -> str:
    [id] = [e.entity_id for e in entries if e.entity == "artifact"]
    return str(id)


def test_bad_owner_cleanups(stubs: Any, ns: str) -> None:
    expect_error(
        lambda: _cleanup(stubs, all_namespaces=True, owner="alice"),
        INVALID,
        field="all_namespaces",
    )
    expect_error(lambda: _cleanup(stubs, namespace=ns, owner="x" * 257), INVALID, field="owner")
    expect_error(lambda: _cleanup(stubs, namespace=ns, owner="a\tb"), INVALID, field="owner")
