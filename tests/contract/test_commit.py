"""TransactionService.Commit: several writes, all or nothing."""

from __future__ import annotations

import grpc
import pytest

from strata.v1 import admin_pb2, transaction_pb2
from tests.contract.helpers import (
    commit,
    count,
    create,
    create_write,
    data_of,
    delete_write,
    expect_error,
    get,
    list_ids,
    unique,
    update_write,
)


def test_commit_applies_create_update_and_delete(stubs, collection):
    create(stubs, collection, "u", {"a": 1, "b": 1})
    create(stubs, collection, "d", {"x": 1})
    response = commit(
        stubs,
        [
            create_write(collection, "c", {"new": True}),
            update_write(collection, "u", {"a": 2}, mask=["data.a"], expected_version=1),
            delete_write(collection, "d", expected_version=1),
        ],
    )
    created, updated, deleted = response.results
    assert (created.record.id, created.record.version, data_of(created.record)) == (
        "c",
        1,
        {"new": True},
    )
    assert (updated.record.id, updated.record.version, data_of(updated.record)) == (
        "u",
        2,
        {"a": 2, "b": 1},
    )
    assert deleted.WhichOneof("result") == "deleted"
    assert (deleted.deleted.collection, deleted.deleted.id, deleted.deleted.existed) == (
        collection,
        "d",
        True,
    )
    assert get(stubs, collection, "c") == created.record
    assert get(stubs, collection, "u") == updated.record
    assert list_ids(stubs, collection) == ["c", "u"]


def test_later_writes_see_earlier_writes_of_the_same_commit(stubs, collection):
    response = commit(
        stubs,
        [
            create_write(collection, "r", {"n": 1}),
            update_write(collection, "r", {"n": 2}, expected_version=1),
            update_write(collection, "r", {"m": 3}, mask=["data.m"], expected_version=2),
            create_write(collection, "gone", {}),
            delete_write(collection, "gone", expected_version=1),
        ],
    )
    assert [result.WhichOneof("result") for result in response.results] == [
        "record",
        "record",
        "record",
        "record",
        "deleted",
    ]
    assert [result.record.version for result in response.results[:3]] == [1, 2, 3]
    record = get(stubs, collection, "r")
    assert (record.version, data_of(record)) == (3, {"n": 2, "m": 3})
    assert list_ids(stubs, collection) == ["r"]


def test_commit_spans_collections_and_lets_the_server_choose_ids(stubs, collection):
    other = unique("c_")
    response = commit(
        stubs, [create_write(collection, data={"i": 1}), create_write(other, data={"i": 2})]
    )
    first, second = (result.record for result in response.results)
    assert first.id and second.id
    assert (first.collection, second.collection) == (collection, other)
    assert data_of(get(stubs, other, second.id)) == {"i": 2}


def test_delete_with_allow_missing_reports_that_nothing_existed(stubs, collection):
    response = commit(stubs, [delete_write(collection, "ghost", allow_missing=True)])
    assert response.results[0].deleted.existed is False


def _assert_untouched(stubs, collection):
    """The state every failing-commit test starts from is still there, unchanged."""
    record = get(stubs, collection, "pre")
    assert (record.version, data_of(record)) == (1, {"n": 1})
    assert list_ids(stubs, collection) == ["other", "pre"]


FAILURES = {
    "stale version on the 3rd write": (
        lambda c: [
            create_write(c, "new1", {}),
            update_write(c, "pre", {"n": 2}),
            update_write(c, "other", {"n": 3}, expected_version=5),
        ],
        grpc.StatusCode.ABORTED,
        "VERSION_CONFLICT",
        {"write_index": "2", "current_version": "1"},
    ),
    "create of an existing id": (
        lambda c: [
            create_write(c, "new1", {}),
            update_write(c, "pre", {"n": 2}),
            delete_write(c, "other"),
            create_write(c, "pre", {"n": 9}),
        ],
        grpc.StatusCode.ALREADY_EXISTS,
        "ALREADY_EXISTS",
        {"write_index": "3"},
    ),
    "update of a missing record": (
        lambda c: [update_write(c, "pre", {"n": 2}), update_write(c, "ghost", {})],
        grpc.StatusCode.NOT_FOUND,
        "NOT_FOUND",
        {"write_index": "1"},
    ),
    "delete of a missing record": (
        lambda c: [delete_write(c, "pre"), delete_write(c, "ghost")],
        grpc.StatusCode.NOT_FOUND,
        "NOT_FOUND",
        {"write_index": "1"},
    ),
    "create twice in one commit": (
        lambda c: [create_write(c, "twice", {}), create_write(c, "twice", {})],
        grpc.StatusCode.ALREADY_EXISTS,
        "ALREADY_EXISTS",
        {"write_index": "1"},
    ),
    "a record too large": (
        lambda c: [
            update_write(c, "pre", {"n": 2}),
            create_write(c, "big", {"s": "x" * 1_500_000}),
        ],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_LARGE",
        {"write_index": "1"},
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_a_failing_write_fails_the_whole_commit(stubs, collection, case):
    writes, code, reason, metadata = case
    create(stubs, collection, "pre", {"n": 1})
    create(stubs, collection, "other", {"n": 1})
    expect_error(lambda: commit(stubs, writes(collection)), code, reason, **metadata)
    _assert_untouched(stubs, collection)
    assert count(stubs, collection) == 2


def test_creates_that_meet_an_existing_id_write_nothing(stubs, collection):
    """Creates of ids assumed new (no request_id) are written by one statement with no
    transaction around it; an id that exists fails all of them, audit entries too."""
    create(stubs, collection, "pre", {"n": 1})
    writes = [create_write(collection, f"new{i}", {"i": i}) for i in range(3)]
    writes.insert(2, create_write(collection, "pre", {"n": 9}))
    expect_error(
        lambda: commit(stubs, writes),
        grpc.StatusCode.ALREADY_EXISTS,
        "ALREADY_EXISTS",
        write_index="2",
    )
    assert list_ids(stubs, collection) == ["pre"]
    assert data_of(get(stubs, collection, "pre")) == {"n": 1}
    for i in range(3):
        audit = stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(entity="record", entity_id=f"{collection}/new{i}")
        )
        assert list(audit.entries) == []
    assert len(commit(stubs, writes[:2] + writes[3:]).results) == 3
    assert list_ids(stubs, collection) == ["new0", "new1", "new2", "pre"]


def test_a_retried_commit_with_the_same_request_id_writes_once(stubs, collection):
    create(stubs, collection, "pre", {"n": 1})
    request_id = unique("commit-")
    writes = [
        create_write(collection, data={"i": 1}),
        update_write(collection, "pre", {"n": 2}, expected_version=1),
    ]
    first = commit(stubs, writes, request_id=request_id)
    retried = commit(stubs, writes, request_id=request_id)
    assert retried == first
    assert count(stubs, collection) == 2
    assert get(stubs, collection, "pre").version == 2
    expect_error(
        lambda: commit(stubs, [create_write(collection, data={"i": 2})], request_id=request_id),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="request_id",
    )
    assert count(stubs, collection) == 2


def test_a_failed_commit_does_not_use_up_its_request_id(stubs, collection):
    request_id = unique("commit-")
    writes = [update_write(collection, "later", {"n": 1})]
    expect_error(lambda: commit(stubs, writes, request_id=request_id), grpc.StatusCode.NOT_FOUND)
    create(stubs, collection, "later", {})
    assert commit(stubs, writes, request_id=request_id).results[0].record.version == 2


def test_a_thousand_writes_commit(stubs, collection):
    writes = [create_write(collection, f"w{i:04d}", {"i": i}) for i in range(1000)]
    assert len(commit(stubs, writes).results) == 1000
    assert count(stubs, collection) == 1000


@pytest.mark.parametrize("size", [0, 1001])
def test_commit_needs_one_to_a_thousand_writes(stubs, collection, size):
    writes = [create_write(collection, f"w{i}") for i in range(size)]
    expect_error(
        lambda: commit(stubs, writes),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "writes",
    )
    assert count(stubs, collection) == 0


def test_a_write_with_no_operation_is_invalid(stubs, collection):
    writes = [create_write(collection, "a"), create_write(collection, "b"), transaction_pb2.Write()]
    expect_error(
        lambda: commit(stubs, writes),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "writes[2]",
    )
    assert count(stubs, collection) == 0
