"""The write rules both adapters share: core.writes.plan_write and core.update.merge."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    TooLarge,
    VersionConflict,
)
from strata_server.core.models import (
    EXPIRE_TIME_PATH,
    CreateRecord,
    Deleted,
    DeleteRecord,
    Record,
    UpdateRecord,
)
from strata_server.core.update import merge, parse_mask
from strata_server.core.writes import plan_write

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
LATER = NOW + timedelta(hours=1)
LIMIT = 10_000


def stored(data=None, version=3, expire_time=None) -> Record:
    """The row as an adapter would read it: written an hour ago."""
    return Record(
        "ns",
        "things",
        "r1",
        data if data is not None else {"a": 1, "b": {"c": 2}},
        version,
        EARLIER - timedelta(days=1),
        EARLIER,
        expire_time,
    )


def plan(write, current=None, max_bytes=LIMIT):
    return plan_write("ns", write, current, NOW, max_bytes)


# --- create -------------------------------------------------------------------------


def test_create_on_no_row_makes_version_1():
    outcome = plan(CreateRecord("things", "r1", {"a": 1}, LATER))
    assert outcome.row == Record("ns", "things", "r1", {"a": 1}, 1, NOW, NOW, LATER)
    assert outcome.result == outcome.row
    assert outcome.data_json == '{"a":1}'
    assert not outcome.delete
    assert (outcome.audit.action, outcome.audit.entity_id, outcome.audit.version) == (
        "create",
        "things/r1",
        1,
    )
    assert outcome.audit.changed_fields == ("data.a",)


def test_create_over_a_live_row_already_exists():
    with pytest.raises(AlreadyExists):
        plan(CreateRecord("things", "r1", {}), stored())


def test_create_over_an_expired_row_starts_again_at_version_1():
    outcome = plan(CreateRecord("things", "r1", {"new": True}), stored(expire_time=NOW))
    assert outcome.row is not None
    assert (outcome.row.version, outcome.row.create_time, outcome.row.data) == (
        1,
        NOW,
        {"new": True},
    )


def test_create_too_large_names_size_and_limit():
    with pytest.raises(TooLarge) as caught:
        plan(CreateRecord("things", "r1", {"s": "é" * 20}), max_bytes=30)
    assert caught.value.metadata["limit"] == "30"
    assert int(caught.value.metadata["size"]) > 30  # UTF-8 bytes, not characters


# --- update -------------------------------------------------------------------------


def test_full_replace_bumps_the_version_and_replaces_data_and_expiry():
    current = stored(expire_time=LATER)
    outcome = plan(UpdateRecord("things", "r1", {"z": 1}), current)
    assert outcome.row == Record("ns", "things", "r1", {"z": 1}, 4, current.create_time, NOW, None)
    assert outcome.audit.action == "update"
    assert outcome.audit.version == 4
    assert outcome.audit.changed_fields == ("data.a", "data.b", "data.z", "expire_time")


def test_merge_changes_only_masked_paths_and_keeps_expiry():
    current = stored(expire_time=LATER)
    write = UpdateRecord("things", "r1", {"b": {"c": 5}, "x": 9}, paths=(("b", "c"),))
    outcome = plan(write, current)
    assert outcome.row is not None
    assert outcome.row.data == {"a": 1, "b": {"c": 5}}
    assert outcome.row.expire_time == LATER
    assert outcome.audit.changed_fields == ("data.b",)


def test_the_expire_time_path_sets_only_the_expiry():
    write = UpdateRecord("things", "r1", {"a": 100}, paths=(EXPIRE_TIME_PATH,), expire_time=LATER)
    outcome = plan(write, stored())
    assert outcome.row is not None
    assert (outcome.row.data, outcome.row.expire_time) == ({"a": 1, "b": {"c": 2}}, LATER)
    assert outcome.audit.changed_fields == ("expire_time",)


def test_matching_expected_version_succeeds():
    outcome = plan(UpdateRecord("things", "r1", {}, expected_version=3), stored())
    assert outcome.row is not None and outcome.row.version == 4


@pytest.mark.parametrize("expected", [1, 2, 4, 100])
def test_stale_expected_version_is_a_conflict_carrying_the_current_version(expected):
    with pytest.raises(VersionConflict) as caught:
        plan(UpdateRecord("things", "r1", {}, expected_version=expected), stored())
    assert caught.value.current_version == 3
    assert caught.value.metadata == {"current_version": "3"}


def test_update_of_no_row_is_not_found():
    with pytest.raises(NotFound):
        plan(UpdateRecord("things", "r1", {}))


def test_update_of_an_expired_row_is_not_found():
    with pytest.raises(NotFound):
        plan(UpdateRecord("things", "r1", {}), stored(expire_time=NOW - timedelta(microseconds=1)))


def test_a_row_expiring_after_now_is_still_live():
    outcome = plan(UpdateRecord("things", "r1", {}), stored(expire_time=NOW + timedelta(seconds=1)))
    assert outcome.row is not None and outcome.row.version == 4


def test_allow_missing_creates_at_version_1():
    outcome = plan(UpdateRecord("things", "r1", {"a": 1}, allow_missing=True))
    assert outcome.row is not None
    assert (outcome.row.version, outcome.row.create_time, outcome.audit.action) == (
        1,
        NOW,
        "create",
    )


def test_allow_missing_with_a_mask_creates_from_the_masked_paths():
    write = UpdateRecord("things", "r1", {"a": 1, "b": 2}, paths=(("a",),), allow_missing=True)
    outcome = plan(write)
    assert outcome.row is not None and outcome.row.data == {"a": 1}


def test_allow_missing_with_an_expected_version_conflicts_at_version_0():
    write = UpdateRecord("things", "r1", {}, allow_missing=True, expected_version=1)
    with pytest.raises(VersionConflict) as caught:
        plan(write)
    assert caught.value.current_version == 0


def test_allow_missing_on_a_live_row_updates_it():
    outcome = plan(UpdateRecord("things", "r1", {"q": 1}, allow_missing=True), stored())
    assert outcome.row is not None and outcome.row.version == 4


def test_update_too_large_after_merge():
    write = UpdateRecord("things", "r1", {"s": "x" * 50}, paths=(("s",),))
    with pytest.raises(TooLarge):
        plan(write, stored(), max_bytes=40)


# --- delete -------------------------------------------------------------------------


def test_delete_of_a_live_row():
    outcome = plan(DeleteRecord("things", "r1", expected_version=3), stored())
    assert outcome.delete
    assert outcome.row is None
    assert outcome.result == Deleted("things", "r1", True)
    assert (outcome.audit.action, outcome.audit.version) == ("delete", 3)
    assert outcome.audit.changed_fields == ("data.a", "data.b")


def test_delete_with_a_stale_version_conflicts():
    with pytest.raises(VersionConflict) as caught:
        plan(DeleteRecord("things", "r1", expected_version=2), stored())
    assert caught.value.current_version == 3


@pytest.mark.parametrize("current", [None, stored(expire_time=EARLIER)], ids=["none", "expired"])
def test_delete_of_a_missing_row(current):
    with pytest.raises(NotFound):
        plan(DeleteRecord("things", "r1"), current)
    outcome = plan(DeleteRecord("things", "r1", allow_missing=True), current)
    assert outcome.result == Deleted("things", "r1", False)


# --- merge --------------------------------------------------------------------------

CURRENT = {"a": {"b": 1, "c": 2}, "x": 1, "keep": "k", "scalar": 5}


@pytest.mark.parametrize(
    ("incoming", "paths", "expected"),
    [
        (
            {"a": {"b": 10}},
            [("a", "b")],
            {"a": {"b": 10, "c": 2}, "x": 1, "keep": "k", "scalar": 5},
        ),
        ({}, [("x",)], {"a": {"b": 1, "c": 2}, "keep": "k", "scalar": 5}),
        ({}, [("a", "b")], {"a": {"c": 2}, "x": 1, "keep": "k", "scalar": 5}),
        ({"new": {"deep": [1]}}, [("new", "deep")], {**CURRENT, "new": {"deep": [1]}}),
        # a non-object in the way is replaced by an object
        ({"scalar": {"y": 1}}, [("scalar", "y")], {**CURRENT, "scalar": {"y": 1}}),
        # removing below a missing or non-object parent changes nothing
        ({}, [("nothing", "here")], CURRENT),
        ({}, [("scalar", "y")], CURRENT),
        ({"whole": 1}, [()], {"whole": 1}),
        ({"a": None}, [("a",)], {**CURRENT, "a": None}),
        ({"a": 1, "x": 2}, [("a",), ("x",)], {**CURRENT, "a": 1, "x": 2}),
        ({"whole": 1, "keep": "new"}, [(), ("keep",)], {"whole": 1, "keep": "new"}),
        ({}, [EXPIRE_TIME_PATH], CURRENT),
    ],
)
def test_merge(incoming, paths, expected):
    before = copy.deepcopy(CURRENT)
    incoming_before = copy.deepcopy(incoming)
    assert merge(CURRENT, incoming, tuple(paths)) == expected
    assert before == CURRENT, "merge must not change its input"
    assert incoming == incoming_before


def test_merge_copies_values_so_later_changes_do_not_leak():
    incoming = {"a": {"list": [1]}}
    result = merge({}, incoming, (("a",),))
    incoming["a"]["list"].append(2)
    assert result == {"a": {"list": [1]}}


@pytest.mark.parametrize(
    ("paths", "parsed"),
    [
        (["data"], ((),)),
        (["data.a"], (("a",),)),
        (["data.a.b", "expire_time"], (("a", "b"), EXPIRE_TIME_PATH)),
    ],
)
def test_parse_mask(paths, parsed):
    assert parse_mask(paths) == parsed


@pytest.mark.parametrize("path", ["foo", "data.", "data..a", "", "version", "expire_time.x"])
def test_parse_mask_refuses_unknown_paths(path):
    with pytest.raises(InvalidArgument) as caught:
        parse_mask([path], "writes[3].update.update_mask")
    assert caught.value.violations[0].field == "writes[3].update.update_mask.paths"
