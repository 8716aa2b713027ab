"""RecordService over a real channel, on both storage shapes."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.contract.helpers import (
    batch_get,
    commit,
    count,
    create,
    create_many,
    create_write,
    data_of,
    delete,
    expect_error,
    from_now,
    get,
    list_ids,
    list_page,
    rfc3339,
    search,
    search_ids,
    unique,
    update,
)

NESTED = {
    "text": "héllo, wörld ✓",
    "empty": "",
    "int": 42,
    "negative": -7,
    "float": 2.5,
    "big": 1e300,
    "yes": True,
    "no": False,
    "nothing": None,
    "list": [1, "two", None, False, {"x": [True, 3.5]}, []],
    "obj": {"inner": {"deep": "yes", "n": 0}, "empty": {}},
}


def test_create_then_get_round_trips_nested_data(stubs, collection):
    created = create(stubs, collection, "r1", NESTED)
    assert (created.namespace, created.collection, created.id) == ("default", collection, "r1")
    assert created.version == 1
    assert data_of(created) == NESTED
    assert created.create_time == created.update_time
    assert created.create_time.ToDatetime(UTC) <= datetime.now(UTC)
    assert not created.HasField("expire_time")

    fetched = get(stubs, collection, "r1")
    assert fetched == created


def test_create_without_record_id_lets_the_server_choose_distinct_ids(stubs, collection):
    first = create(stubs, collection, data={"n": 1})
    second = create(stubs, collection, data={"n": 2})
    for record in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._~:@+=-]{0,255}", record.id), record.id
        assert record.version == 1
    assert first.id != second.id
    assert data_of(get(stubs, collection, second.id)) == {"n": 2}


def test_ids_may_use_every_allowed_character(stubs, collection):
    ids = ["a._~:@+=-z", "Z9", "0", "9.9.9", "user@example.com", "k=v+w", "i" * 256]
    for record_id in ids:
        create(stubs, collection, record_id, {"id": record_id})
    for record_id in ids:
        assert data_of(get(stubs, collection, record_id)) == {"id": record_id}
    assert list_ids(stubs, collection, page_size=2) == sorted(ids)
    assert list_ids(stubs, collection, filter='id = "user@example.com"') == ["user@example.com"]


def test_create_of_an_existing_id_is_already_exists(stubs, collection):
    create(stubs, collection, "dup", {"n": 1})
    expect_error(
        lambda: create(stubs, collection, "dup", {"n": 2}),
        grpc.StatusCode.ALREADY_EXISTS,
        "ALREADY_EXISTS",
    )
    assert data_of(get(stubs, collection, "dup")) == {"n": 1}


def test_get_of_a_missing_record_is_not_found(stubs, collection):
    expect_error(lambda: get(stubs, collection, "nope"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def test_every_write_adds_one_to_the_version(stubs, collection):
    first = create(stubs, collection, "v", {"n": 1})
    second = update(stubs, collection, "v", {"n": 2})
    third = update(stubs, collection, "v", {"n": 3})
    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert get(stubs, collection, "v").version == 3
    assert third.create_time == first.create_time
    assert first.update_time.ToDatetime() <= second.update_time.ToDatetime()
    assert second.update_time.ToDatetime() <= third.update_time.ToDatetime()


def test_records_are_isolated_by_namespace(stubs, collection):
    create(stubs, collection, "same", {"where": "default"})
    other = create(stubs, collection, "same", {"where": "other"}, namespace="tenant-a")
    assert other.namespace == "tenant-a"
    assert data_of(get(stubs, collection, "same")) == {"where": "default"}
    assert data_of(get(stubs, collection, "same", namespace="default")) == {"where": "default"}
    assert data_of(get(stubs, collection, "same", namespace="tenant-a")) == {"where": "other"}
    assert count(stubs, collection, namespace="tenant-a") == 1
    expect_error(
        lambda: get(stubs, collection, "same", namespace="tenant-b"), grpc.StatusCode.NOT_FOUND
    )


# --- UpdateRecord -------------------------------------------------------------------


def test_update_without_mask_replaces_data_and_expire_time(stubs, collection):
    create(stubs, collection, "r", {"a": 1, "b": {"c": 2}}, expire_time=from_now(3600))
    updated = update(stubs, collection, "r", {"z": [1]})
    assert data_of(updated) == {"z": [1]}
    assert not updated.HasField("expire_time")
    assert get(stubs, collection, "r") == updated


def test_update_mask_merges_nested_paths_and_removes_paths_absent_from_data(stubs, collection):
    create(stubs, collection, "r", {"a": {"b": 1, "c": 2}, "x": 1, "keep": "k"})
    updated = update(
        stubs,
        collection,
        "r",
        {"a": {"b": 10, "ignored": True}, "y": {"z": 5}, "unmasked": 1},
        mask=["data.a.b", "data.x", "data.y.z", "data.gone.deeper"],
    )
    assert data_of(updated) == {"a": {"b": 10, "c": 2}, "y": {"z": 5}, "keep": "k"}
    assert updated.version == 2
    assert data_of(get(stubs, collection, "r")) == data_of(updated)


def test_update_mask_data_replaces_data_but_keeps_expire_time(stubs, collection):
    created = create(stubs, collection, "r", {"a": 1}, expire_time=from_now(3600))
    updated = update(stubs, collection, "r", {"b": 2}, mask=["data"])
    assert data_of(updated) == {"b": 2}
    assert updated.expire_time == created.expire_time


def test_update_mask_expire_time_sets_and_clears_only_the_expiry(stubs, collection):
    create(stubs, collection, "r", {"a": 1})
    expiry = from_now(3600)
    updated = update(
        stubs, collection, "r", {"ignored": 1}, mask=["expire_time"], expire_time=expiry
    )
    assert updated.expire_time == expiry
    assert data_of(updated) == {"a": 1}
    cleared = update(stubs, collection, "r", mask=["expire_time"])
    assert not cleared.HasField("expire_time")
    assert data_of(cleared) == {"a": 1}
    assert cleared.version == 3


def test_update_of_a_missing_record_is_not_found(stubs, collection):
    expect_error(
        lambda: update(stubs, collection, "nope", {"a": 1}), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"
    )
    expect_error(lambda: get(stubs, collection, "nope"), grpc.StatusCode.NOT_FOUND)


def test_update_with_allow_missing_creates_then_updates(stubs, collection):
    created = update(stubs, collection, "up", {"a": 1}, allow_missing=True)
    assert (created.id, created.version, data_of(created)) == ("up", 1, {"a": 1})
    updated = update(stubs, collection, "up", {"a": 2}, allow_missing=True)
    assert (updated.version, data_of(updated)) == (2, {"a": 2})
    assert updated.create_time == created.create_time


def test_update_with_the_current_expected_version_succeeds(stubs, collection):
    create(stubs, collection, "r", {"n": 1})
    assert update(stubs, collection, "r", {"n": 2}, expected_version=1).version == 2
    assert update(stubs, collection, "r", {"n": 3}, expected_version=2).version == 3


def test_update_with_a_stale_expected_version_is_a_version_conflict(stubs, collection):
    create(stubs, collection, "r", {"n": 1})
    update(stubs, collection, "r", {"n": 2})
    expect_error(
        lambda: update(stubs, collection, "r", {"n": 99}, expected_version=1),
        grpc.StatusCode.ABORTED,
        "VERSION_CONFLICT",
        current_version="2",
    )
    record = get(stubs, collection, "r")
    assert (record.version, data_of(record)) == (2, {"n": 2})


# --- DeleteRecord -------------------------------------------------------------------


def test_delete_removes_the_record(stubs, collection):
    create(stubs, collection, "r", {"n": 1})
    delete(stubs, collection, "r")
    expect_error(lambda: get(stubs, collection, "r"), grpc.StatusCode.NOT_FOUND)
    assert count(stubs, collection) == 0
    recreated = create(stubs, collection, "r", {"n": 2})
    assert recreated.version == 1


def test_delete_of_a_missing_record_is_not_found_unless_allow_missing(stubs, collection):
    expect_error(lambda: delete(stubs, collection, "nope"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    delete(stubs, collection, "nope", allow_missing=True)


def test_delete_checks_expected_version(stubs, collection):
    create(stubs, collection, "r", {"n": 1})
    update(stubs, collection, "r", {"n": 2})
    expect_error(
        lambda: delete(stubs, collection, "r", expected_version=1),
        grpc.StatusCode.ABORTED,
        "VERSION_CONFLICT",
        current_version="2",
    )
    assert get(stubs, collection, "r").version == 2
    delete(stubs, collection, "r", expected_version=2)
    expect_error(lambda: get(stubs, collection, "r"), grpc.StatusCode.NOT_FOUND)


# --- BatchGetRecords ----------------------------------------------------------------


def test_batch_get_returns_request_order_once_each_and_names_missing_ids(stubs, collection):
    create_many(stubs, collection, {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}})
    response = batch_get(stubs, collection, ["c", "ghost", "a", "c", "b", "a", "ghost2"])
    assert [record.id for record in response.records] == ["c", "a", "b"]
    assert [data_of(record)["n"] for record in response.records] == [3, 1, 2]
    assert list(response.missing_ids) == ["ghost", "ghost2"]


def test_batch_get_of_no_ids_is_empty(stubs, collection):
    response = batch_get(stubs, collection, [])
    assert (list(response.records), list(response.missing_ids)) == ([], [])


def test_batch_get_accepts_a_thousand_ids(stubs, collection):
    create(stubs, collection, "id500", {})
    response = batch_get(stubs, collection, [f"id{i}" for i in range(1000)])
    assert [record.id for record in response.records] == ["id500"]
    assert len(response.missing_ids) == 999


# --- ListRecords: filters -----------------------------------------------------------

DATASET: dict[str, dict[str, Any]] = {
    "r1": {
        "status": "open",
        "size": 1,
        "flag": True,
        "note": None,
        "owner": {"name": "ann", "age": 30},
    },
    "r2": {"status": "open", "size": 5, "flag": False, "owner": {"name": "bob", "age": 40}},
    "r3": {
        "status": "closed",
        "size": 3,
        "flag": True,
        "note": "hi",
        "owner": {"name": "cid", "age": 25},
    },
    "r4": {"status": "closed", "size": 10, "owner": {"name": "ann", "age": 50}},
    "r5": {"status": "pending", "size": 7.5, "flag": False, "note": None},
    "r6": {"status": "open", "size": "big", "tags": 'it\'s "quoted"'},
}


@pytest.fixture(scope="module")
def dataset(server, stubs_for) -> tuple[Any, str]:
    """DATASET in a collection of its own, created once per module and shape."""
    stubs = stubs_for(server)
    collection = unique("ds_")
    create_many(stubs, collection, DATASET)
    return stubs, collection


FILTERS = [
    ('data.status = "open"', "r1 r2 r6"),
    ("data.status = 'open'", "r1 r2 r6"),
    ('data.status != "open"', "r3 r4 r5"),
    ("data.size > 3", "r2 r4 r5"),
    ("data.size >= 3", "r2 r3 r4 r5"),
    ("data.size < 3", "r1"),
    ("data.size <= 3", "r1 r3"),
    ("data.size = 7.5", "r5"),
    ("data.size != 5", "r1 r3 r4 r5"),
    ("data.size > -1.5e1", "r1 r2 r3 r4 r5"),
    ('data.size = "big"', "r6"),
    ('data.status > "closed"', "r1 r2 r5 r6"),
    ('data.status <= "open"', "r1 r2 r3 r4 r6"),
    ("data.flag = true", "r1 r3"),
    ("data.flag = false", "r2 r5"),
    ("data.flag != true", "r2 r5"),
    ("data.note = null", "r1 r2 r4 r5 r6"),
    ("data.note != null", "r3"),
    ("data.note:*", "r1 r3 r5"),
    ("data.owner.age:*", "r1 r2 r3 r4"),
    ("NOT data.flag:*", "r4 r6"),
    ('data.owner.name = "ann"', "r1 r4"),
    ("data.owner.age > 28", "r1 r2 r4"),
    ('data.tags = "it\'s \\"quoted\\""', "r6"),
    ('data.owner.age > 28 AND data.status = "open"', "r1 r2"),
    ('data.status = "closed" OR data.size < 2', "r1 r3 r4"),
    ('NOT data.status = "open"', "r3 r4 r5"),
    ('-data.status = "open"', "r3 r4 r5"),
    ('NOT (data.status = "open" OR data.status = "closed")', "r5"),
    ('(data.status = "open" OR data.status = "closed") AND data.flag = true', "r1 r3"),
    # AIP-160: OR binds tighter than AND, so this is pending AND (flag = false OR size = 10).
    ('data.status = "pending" AND data.flag = false OR data.size = 10', "r5"),
    ('(data.status = "pending" AND data.flag = false) OR data.size = 10', "r4 r5"),
    ('data.size = 10 OR data.status = "pending" AND data.flag = false', "r5"),
    ('data.status = "open" AND NOT data.flag:*', "r6"),
    ('id = "r3"', "r3"),
    ('id > "r4"', "r5 r6"),
    ("version = 1", "r1 r2 r3 r4 r5 r6"),
    ("version > 1", ""),
    ("expire_time = null", "r1 r2 r3 r4 r5 r6"),
    ("expire_time:*", ""),
    ('create_time > "2000-01-01T00:00:00Z"', "r1 r2 r3 r4 r5 r6"),
    ('create_time < "2000-01-01T00:00:00+02:00"', ""),
    ("data.missing = 1", ""),
    ("data.owner = 1", ""),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS, ids=[f for f, _ in FILTERS])
def test_list_filter(dataset, filter, expected):
    stubs, collection = dataset
    assert list_ids(stubs, collection, filter=filter) == expected.split()
    assert count(stubs, collection, filter) == len(expected.split())


def test_filter_on_create_time(stubs, collection):
    create(stubs, collection, "early", {})
    time.sleep(0.01)
    late = create(stubs, collection, "late", {})
    boundary = late.create_time.ToDatetime(UTC) - timedelta(microseconds=1)
    assert list_ids(stubs, collection, filter=f'create_time > "{rfc3339(boundary)}"') == ["late"]
    assert list_ids(stubs, collection, filter=f'create_time < "{rfc3339(boundary)}"') == ["early"]
    exact = f'create_time = "{rfc3339(late.create_time)}"'
    assert list_ids(stubs, collection, filter=exact) == ["late"]


def test_filter_on_version_and_update_time(stubs, collection):
    create_many(stubs, collection, {"a": {}, "b": {}})
    updated = update(stubs, collection, "b", {"x": 1})
    assert list_ids(stubs, collection, filter="version = 2") == ["b"]
    after = f'update_time >= "{rfc3339(updated.update_time)}"'
    assert list_ids(stubs, collection, filter=after) == ["b"]


def test_count_without_filter_counts_every_live_record(dataset):
    stubs, collection = dataset
    assert count(stubs, collection) == len(DATASET)
    assert count(stubs, unique("empty_")) == 0


# --- ListRecords: order_by ----------------------------------------------------------

# order_by -> the ids it lists, for each filter
ORDERS = {
    "": {
        "": "r1 r2 r3 r4 r5 r6",
        "id": "r1 r2 r3 r4 r5 r6",
        "id desc": "r6 r5 r4 r3 r2 r1",
        # ties are broken by id, ascending, whatever the direction of the first key
        "data.status": "r3 r4 r1 r2 r6 r5",
        "data.status desc": "r5 r1 r2 r6 r3 r4",
    },
    "data.size >= 0": {
        "data.size": "r1 r3 r2 r5 r4",
        "data.size asc": "r1 r3 r2 r5 r4",
        "data.size desc": "r4 r5 r2 r3 r1",
        "data.status, data.size desc": "r4 r3 r2 r1 r5",
    },
    "data.owner:*": {"data.owner.name, data.owner.age desc": "r4 r1 r2 r3"},
    "version = 1": {
        "data.status desc, id desc": "r5 r6 r2 r1 r4 r3",
        # a missing key sorts first ascending and last descending
        "data.owner.age": "r5 r6 r3 r1 r2 r4",
        "data.owner.age desc": "r4 r2 r1 r3 r5 r6",
    },
}
ORDER_CASES = [(o, f, ids) for f, orders in ORDERS.items() for o, ids in orders.items()]


@pytest.mark.parametrize(
    ("order_by", "filter", "expected"),
    ORDER_CASES,
    ids=[f"{o or 'default'}|{f}" for o, f, _ in ORDER_CASES],
)
def test_list_order_by(dataset, order_by, filter, expected):
    stubs, collection = dataset
    assert list_ids(stubs, collection, order_by=order_by, filter=filter) == expected.split()
    # the same order, one record per page
    paged = list_ids(stubs, collection, order_by=order_by, filter=filter, page_size=1)
    assert paged == expected.split()


def test_strings_sort_by_code_point(stubs, collection):
    names = {"x1": "b", "x2": "B", "x3": "a", "x4": "é", "x5": "Z", "x6": "ab", "x7": ""}
    create_many(stubs, collection, {key: {"name": name} for key, name in names.items()})
    ordered = sorted(names, key=names.__getitem__)
    assert list_ids(stubs, collection, order_by="data.name", page_size=2) == ordered
    assert list_ids(stubs, collection, order_by="data.name desc") == ordered[::-1]
    assert list_ids(stubs, collection, filter='data.name >= "a"') == ["x1", "x3", "x4", "x6"]


def test_order_by_nullable_times_pages_nulls_first_ascending(stubs, collection):
    for record_id, hours in {"a": None, "b": 2, "c": 1, "d": None, "e": 1}.items():
        expiry = {} if hours is None else {"expire_time": from_now(hours * 3600)}
        create(stubs, collection, record_id, {}, **expiry)
    assert list_ids(stubs, collection, order_by="expire_time", page_size=1) == list("adceb")
    assert list_ids(stubs, collection, order_by="expire_time desc", page_size=1) == list("becad")
    update(stubs, collection, "c", {"touched": True}, mask=["data.touched"])
    assert list_ids(stubs, collection, order_by="update_time desc", page_size=2)[0] == "c"


def test_order_by_create_time(stubs, collection):
    ids = ["m", "c", "x", "a"]
    for record_id in ids:
        create(stubs, collection, record_id, {})
    assert list_ids(stubs, collection, order_by="create_time") == ids
    assert list_ids(stubs, collection, order_by="create_time desc") == ids[::-1]


# --- ListRecords: paging ------------------------------------------------------------


def test_paging_with_page_size_3_visits_every_record_once_in_order(stubs, collection):
    ids = [f"p{i:02d}" for i in range(10)]
    create_many(stubs, collection, {record_id: {"rank": i % 3} for i, record_id in enumerate(ids)})
    pages = []
    token = ""
    while True:
        page = list_page(stubs, collection, page_size=3, page_token=token)
        pages.append([record.id for record in page.records])
        token = page.next_page_token
        if not token:
            break
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [record_id for page in pages for record_id in page] == ids

    # the page size may change from one call to the next
    first = list_page(stubs, collection, page_size=3)
    second = list_page(stubs, collection, page_size=5, page_token=first.next_page_token)
    assert [record.id for record in second.records] == ids[3:8]

    by_rank = list_ids(stubs, collection, page_size=3, order_by="data.rank desc")
    expected = sorted(ids, key=lambda record_id: (-(int(record_id[1:]) % 3), record_id))
    assert by_rank == expected


MIXED = {
    "n1": 1,
    "n2": 2.5,
    "n3": -3,
    "s1": "a",
    "s2": "B",
    "t": True,
    "f": False,
    "z": None,
    "o": {"x": 1},
    "l": [1],
    "one": 1,
    "e": "é",
}


@pytest.mark.parametrize("order_by", ["data.v", "data.v desc", "data.v desc, id desc"])
def test_paging_over_values_of_every_json_type_matches_a_single_page(stubs, collection, order_by):
    create_many(stubs, collection, {key: {"v": value} for key, value in MIXED.items()})
    create(stubs, collection, "missing", {})
    whole = list_page(stubs, collection, order_by=order_by, page_size=100)
    assert not whole.next_page_token
    expected = [record.id for record in whole.records]
    assert sorted(expected) == sorted([*MIXED, "missing"])
    for size in (1, 2, 5):
        assert list_ids(stubs, collection, order_by=order_by, page_size=size) == expected


def test_a_page_that_ends_the_list_has_no_token(stubs, collection):
    create_many(stubs, collection, {f"e{i}": {} for i in range(6)})
    first = list_page(stubs, collection, page_size=3)
    second = list_page(stubs, collection, page_size=3, page_token=first.next_page_token)
    assert first.next_page_token
    assert [record.id for record in second.records] == ["e3", "e4", "e5"]
    assert second.next_page_token == ""


def test_page_size_zero_means_50_and_large_sizes_are_clamped(stubs, collection):
    commit(stubs, [create_write(collection, f"s{i:03d}") for i in range(55)])
    first = list_page(stubs, collection)
    assert len(first.records) == 50
    assert first.next_page_token
    everything = list_page(stubs, collection, page_size=100_000)
    assert len(everything.records) == 55
    assert not everything.next_page_token


@pytest.mark.parametrize("order_by", ["", "data.n desc", "create_time", "data.n, create_time desc"])
def test_keyset_paging_is_stable_under_concurrent_inserts(stubs, collection, order_by):
    rng = random.Random(order_by)
    before = {f"k{i:03d}": {"n": i} for i in range(0, 120, 10)}
    create_many(stubs, collection, before)
    seen: list[str] = []
    token = ""
    for step in range(100):
        page = list_page(stubs, collection, page_size=3, order_by=order_by, page_token=token)
        seen.extend(record.id for record in page.records)
        token = page.next_page_token
        if not token:
            break
        for _ in range(2):  # new records landing before, inside and after the cursor
            n = rng.randrange(-10, 130)
            create(stubs, collection, f"k{n:03d}-new{step}-{rng.randrange(1000)}", {"n": n})
    assert len(seen) == len(set(seen)), f"records seen twice: {sorted(seen)}"
    assert set(before) <= set(seen), f"missed {sorted(set(before) - set(seen))}"


@pytest.mark.parametrize(
    "change",
    [
        {"filter": "data.n > 1"},
        {"order_by": "id desc"},
        {"order_by": "data.n"},
        {"collection": "other"},
    ],
    ids=["filter", "order", "order2", "collection"],
)
def test_a_page_token_is_refused_for_another_query(stubs, collection, change):
    create_many(stubs, collection, {f"t{i}": {"n": i} for i in range(5)})
    token = list_page(stubs, collection, page_size=2, filter="data.n >= 0").next_page_token
    assert token
    request = {"collection": collection, "filter": "data.n >= 0", "page_size": 2, **change}
    target = request.pop("collection")
    expect_error(
        lambda: list_page(stubs, target, page_token=token, **request),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "page_token",
    )


# --- SearchRecords ------------------------------------------------------------------

SEARCHABLE = {
    "s1": {"title": "apple banana", "body": "cherry"},
    "s2": {"title": "apple apple apple", "body": "apple pie apple"},
    "s3": {"title": "banana split", "nested": {"deep": ["cherry apple"]}},
    "s4": {"title": "nothing here", "n": 5, "label": "applesauce"},
}


def test_search_finds_words_in_string_values_best_first(stubs, collection):
    create_many(stubs, collection, SEARCHABLE)
    create(stubs, unique("elsewhere_"), "s9", {"title": "apple"})
    create(stubs, collection, "s8", {"title": "apple"}, namespace="tenant-x")
    response = search(stubs, collection, "apple")
    ids = [hit.record.id for hit in response.hits]
    assert sorted(ids) == ["s1", "s2", "s3"]
    assert ids[0] == "s2", "the record that is all about apples ranks first"
    scores = [hit.score for hit in response.hits]
    assert scores == sorted(scores, reverse=True)
    assert data_of(response.hits[0].record) == SEARCHABLE["s2"]
    assert not response.next_page_token


def test_search_requires_every_word(stubs, collection):
    create_many(stubs, collection, SEARCHABLE)
    assert sorted(search_ids(stubs, collection, "apple cherry")) == ["s1", "s3"]
    assert sorted(search_ids(stubs, collection, "banana")) == ["s1", "s3"]
    assert search_ids(stubs, collection, "banana pie") == []
    assert search_ids(stubs, collection, "durian") == []


def test_search_treats_the_query_as_plain_words(stubs, collection):
    create_many(stubs, collection, SEARCHABLE)
    assert sorted(search_ids(stubs, collection, '"apple')) == ["s1", "s2", "s3"]
    for query in ["apple*", "apple OR durian", "NEAR(apple)", "title:apple", "a & b | !c", "-"]:
        # no search syntax leaks through: `apple*` is not a prefix query for applesauce
        assert set(search_ids(stubs, collection, query)) <= {"s1", "s2", "s3"}, query


def test_search_sees_updates_and_deletes(stubs, collection):
    create_many(stubs, collection, SEARCHABLE)
    update(stubs, collection, "s1", {"title": "durian"})
    delete(stubs, collection, "s3")
    assert search_ids(stubs, collection, "banana") == []
    assert search_ids(stubs, collection, "durian") == ["s1"]


def test_search_pages_through_every_hit_once(stubs, collection):
    create_many(stubs, collection, {f"z{i}": {"text": "zebra " * (i + 1)} for i in range(5)})
    first = search(stubs, collection, "zebra", page_size=2)
    assert len(first.hits) == 2
    assert first.next_page_token
    ids = search_ids(stubs, collection, "zebra", page_size=2)
    assert sorted(ids) == [f"z{i}" for i in range(5)]


# --- expire_time --------------------------------------------------------------------


def test_an_expired_record_disappears_and_its_id_can_be_reused(stubs, collection):
    expiry = from_now(1.5)
    created = create(stubs, collection, "ttl", {"a": 1, "text": "ephemeral"}, expire_time=expiry)
    create(stubs, collection, "keep", {"a": 1})
    assert created.expire_time == expiry
    assert get(stubs, collection, "ttl").expire_time == expiry
    assert list_ids(stubs, collection) == ["keep", "ttl"]
    assert list_ids(stubs, collection, filter="expire_time:*") == ["ttl"]
    assert search_ids(stubs, collection, "ephemeral") == ["ttl"]

    time.sleep(max(0.0, (expiry.ToDatetime(UTC) - datetime.now(UTC)).total_seconds()) + 0.2)

    expect_error(lambda: get(stubs, collection, "ttl"), grpc.StatusCode.NOT_FOUND)
    assert list_ids(stubs, collection) == ["keep"]
    assert count(stubs, collection) == 1
    assert count(stubs, collection, "data.a = 1") == 1
    assert list(batch_get(stubs, collection, ["ttl"]).missing_ids) == ["ttl"]
    assert search_ids(stubs, collection, "ephemeral") == []
    expect_error(lambda: update(stubs, collection, "ttl", {"a": 2}), grpc.StatusCode.NOT_FOUND)
    recreated = create(stubs, collection, "ttl", {"a": 2})
    assert recreated.version == 1
    assert not recreated.HasField("expire_time")
    assert data_of(get(stubs, collection, "ttl")) == {"a": 2}


# --- request_id ---------------------------------------------------------------------


def test_a_retried_create_with_the_same_request_id_writes_once(stubs, collection):
    request_id = unique("req-")
    first = create(stubs, collection, data={"a": 1}, request_id=request_id)
    retried = create(stubs, collection, data={"a": 1}, request_id=request_id)
    assert retried == first
    assert count(stubs, collection) == 1
    assert get(stubs, collection, first.id).version == 1


def test_a_retry_returns_the_first_result_even_after_later_writes(stubs, collection):
    request_id = unique("req-")
    first = create(stubs, collection, "r", {"a": 1}, request_id=request_id)
    update(stubs, collection, "r", {"a": 2})
    assert create(stubs, collection, "r", {"a": 1}, request_id=request_id) == first
    assert get(stubs, collection, "r").version == 2


def test_request_ids_are_scoped_to_their_namespace(stubs, collection):
    request_id = unique("req-")
    here = create(stubs, collection, data={"a": 1}, request_id=request_id)
    there = create(stubs, collection, data={"a": 1}, request_id=request_id, namespace="tenant-b")
    assert (here.namespace, there.namespace) == ("default", "tenant-b")
    assert here.id != there.id
    assert count(stubs, collection, namespace="tenant-b") == 1


def test_a_request_id_reused_for_different_data_is_invalid(stubs, collection):
    request_id = unique("req-")
    create(stubs, collection, data={"a": 1}, request_id=request_id)
    expect_error(
        lambda: create(stubs, collection, data={"a": 2}, request_id=request_id),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="request_id",
    )
    assert count(stubs, collection) == 1
