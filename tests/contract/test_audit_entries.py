"""AdminService.ListAuditEntries over a real channel, on both storage shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc

from strata.v1 import admin_pb2, queue_pb2, records_pb2
from tests.contract.helpers import (
    all_pages,
    create,
    delete,
    expect_error,
    queue_stub,
    timestamp,
    unique,
    update,
)


def listed(stubs, **fields) -> list[admin_pb2.AuditEntry]:
    return all_pages(
        lambda token: stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(page_token=token, **fields)
        ),
        lambda page: page.entries,
    )


def test_a_records_history_newest_first(stubs, collection):
    metadata = (("x-strata-actor", "ada"),)
    stubs.records.CreateRecord.with_call(
        records_pb2.CreateRecordRequest(
            collection=collection, record_id="r1", request_id=unique("req")
        ),
        metadata=metadata,
    )
    update(stubs, collection, "r1", {"a": 1})
    delete(stubs, collection, "r1")
    entries = listed(stubs, entity="record", entity_id=f"{collection}/r1")
    assert [(e.action, e.version) for e in entries] == [("delete", 2), ("update", 2), ("create", 1)]
    assert [e.seq for e in entries] == sorted((e.seq for e in entries), reverse=True)
    assert entries[-1].actor == "ada" and entries[-1].request_id
    assert entries[1].changed_fields
    assert all(e.time.seconds > 0 for e in entries)


def test_filters_by_actor_action_and_entity(stubs, collection):
    actor = unique("actor")
    for i in range(3):
        create(stubs, collection, f"x{i}")
    qs = queue_stub(stubs.channel)
    queue = unique("q")
    qs.Enqueue.with_call(
        queue_pb2.EnqueueRequest(queue=queue), metadata=(("x-strata-actor", actor),)
    )
    mine = listed(stubs, actor=actor)
    assert [(e.entity, e.action) for e in mine] == [("job", "enqueue")]
    creates = listed(stubs, entity="record", action="create")
    assert {f"{collection}/x{i}" for i in range(3)} <= {e.entity_id for e in creates}
    assert all(e.action == "create" and e.entity == "record" for e in creates)


def test_pages_cover_every_entry_once(stubs, collection):
    for i in range(7):
        create(stubs, collection, f"p{i}")
    ids = [
        e.entity_id
        for e in listed(stubs, entity="record", action="create", page_size=2)
        if e.entity_id.startswith(f"{collection}/")
    ]
    assert ids == [f"{collection}/p{i}" for i in reversed(range(7))]


def test_time_range(stubs, collection):
    create(stubs, collection, "early")
    cut = datetime.now(UTC) + timedelta(milliseconds=5)
    while datetime.now(UTC) <= cut:
        pass
    create(stubs, collection, "late")

    def ids(**fields):
        return {e.entity_id for e in listed(stubs, entity="record", **fields)} & {
            f"{collection}/early",
            f"{collection}/late",
        }

    assert ids(end_time=timestamp(cut)) == {f"{collection}/early"}
    assert ids(start_time=timestamp(cut)) == {f"{collection}/late"}


def test_bad_input(stubs):
    now = datetime.now(UTC)
    expect_error(
        lambda: listed(stubs, start_time=timestamp(now), end_time=timestamp(now - timedelta(1))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="start_time",
    )
    expect_error(
        lambda: stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(page_token="garbage")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )
    expect_error(
        lambda: stubs.admin.ListAuditEntries(admin_pb2.ListAuditEntriesRequest(page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_size",
    )
    expect_error(
        lambda: listed(stubs, actor="bad\nactor"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="actor",
    )
    other_page = stubs.admin.ListAuditEntries(admin_pb2.ListAuditEntriesRequest(page_size=1))
    if other_page.next_page_token:
        expect_error(
            lambda: stubs.admin.ListAuditEntries(
                admin_pb2.ListAuditEntriesRequest(
                    actor="someone", page_token=other_page.next_page_token
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="page_token",
        )
