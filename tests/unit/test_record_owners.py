"""Records' owners in the pure rules: what a write does to the owner, the filter's
owner field, and the stored forms (idempotent results, cache entries) written
before records had owners."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core import codec
from strata_server.core.errors import InvalidArgument
from strata_server.core.filters import Compare, Field, Present, parse_filter
from strata_server.core.models import CreateRecord, Record, UpdateRecord
from strata_server.core.writes import plan_write
from strata_server.storage.sqlite.dialect import SQLITE
from strata_server.storage.sqlquery import compile_where

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
LIMIT = 10_000


def stored(owner: str) -> Record:
    earlier = NOW - timedelta(hours=1)
    return Record("ns", "things", "r1", {"a": 1}, 3, earlier, earlier, None, owner)


def test_a_create_sets_the_owner_and_audits_it() -> None:
    outcome = plan_write(
        "ns", CreateRecord("things", "r1", {"a": 1}, owner="ada"), None, NOW, LIMIT
    )
    assert outcome.row is not None and outcome.row.owner == "ada"
    assert outcome.audit.changed_fields == ("data.a", "owner")
    unowned = plan_write("ns", CreateRecord("things", "r2", {}), None, NOW, LIMIT)
    assert unowned.row is not None and unowned.row.owner == ""
    assert "owner" not in unowned.audit.changed_fields


@pytest.mark.parametrize(
    ("owner", "paths", "expected", "audited"),
    [
        (None, None, "ada", False),  # unset keeps it on a full replace
        (None, (("a",),), "ada", False),  # and with a mask
        ("bob", None, "bob", True),
        ("bob", (("a",),), "bob", True),
        ("", None, "", True),  # empty removes it
        ("ada", None, "ada", False),  # the same owner is no change
    ],
)
def test_an_update_keeps_sets_or_clears_the_owner(
    owner: str | None, paths: tuple[tuple[str, ...], ...] | None, expected: str, audited: bool
) -> None:
    write = UpdateRecord("things", "r1", {"a": 2}, paths=paths, owner=owner)
    outcome = plan_write("ns", write, stored("ada"), NOW, LIMIT)
    assert outcome.row is not None and outcome.row.owner == expected
    assert ("owner" in outcome.audit.changed_fields) is audited


def test_an_upsert_creates_with_the_given_owner() -> None:
    write = UpdateRecord("things", "r1", {}, allow_missing=True, owner="cy")
    outcome = plan_write("ns", write, None, NOW, LIMIT)
    assert outcome.row is not None and (outcome.row.owner, outcome.row.version) == ("cy", 1)


def test_owner_in_a_filter() -> None:
    assert parse_filter('owner = "ada"') == Compare(Field("owner"), "=", "ada")
    assert parse_filter('owner = ""') == Compare(Field("owner"), "=", None)
    assert parse_filter('owner != ""') == Compare(Field("owner"), "!=", None)
    assert parse_filter('owner > ""') == Compare(Field("owner"), ">", "")
    assert parse_filter("owner:*") == Present(Field("owner"))
    assert compile_where(SQLITE, parse_filter('owner = ""')) == ("(owner IS NULL)", [])
    assert compile_where(SQLITE, parse_filter("owner:*")) == ("(owner IS NOT NULL)", [])
    for bad in ("owner = 5", "owner = true", "owner.x = 1", "owner < null"):
        with pytest.raises(InvalidArgument):
            parse_filter(bad)


def test_cache_entries_and_results_from_before_owners_read_as_unowned() -> None:
    record = stored("ada")
    entry = codec.record_to_cache(record)
    assert codec.record_from_cache("ns", "things", "r1", entry) == record
    unowned = stored("")
    assert len(json.loads(codec.record_to_cache(unowned))) == 5  # no owner: no extra field
    old_entry = json.dumps(json.loads(codec.record_to_cache(record))[:5]).encode()
    assert codec.record_from_cache("ns", "things", "r1", old_entry) == unowned

    [result] = codec.results_to_json([record])
    assert codec.results_from_json([result]) == [record]
    del result["record"]["owner"]
    assert codec.results_from_json([result]) == [unowned]
