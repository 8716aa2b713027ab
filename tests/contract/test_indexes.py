"""AdminService.CreateIndex / ListIndexes / DropIndex over a real channel, on both
shapes, and the declared index in the query plan of ListRecords (read from the
server's own database with the server's own statement compiler)."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psycopg
import pytest

from strata.v1 import admin_pb2
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.index_paths import index_name
from strata_server.core.models import ListQuery
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.indexes import IndexedPaths
from strata_server.storage.sqlite.records import list_statement
from strata_server.storage.sqlquery import compile_list
from tests.contract.helpers import (
    commit,
    create_many,
    create_write,
    expect_error,
    list_ids,
    unique,
)
from tests.support.server import StrataProcess


def build(stubs: Any, collection: str, field: str, **fields: Any) -> list[Any]:
    """The whole CreateIndex stream."""
    return list(
        stubs.admin.CreateIndex(
            admin_pb2.CreateIndexRequest(collection=collection, field=field, **fields)
        )
    )


def indexes(stubs: Any, **fields: Any) -> list[admin_pb2.Index]:
    return list(stubs.admin.ListIndexes(admin_pb2.ListIndexesRequest(**fields)).indexes)


def drop(stubs: Any, collection: str, field: str) -> None:
    stubs.admin.DropIndex(admin_pb2.DropIndexRequest(collection=collection, field=field))


def test_create_list_drop(stubs, collection):
    key = unique("k")
    create_many(stubs, collection, {f"r{i}": {key: f"v{i % 3}"} for i in range(30)})
    events = build(stubs, collection, f"data.{key}")
    *progress, last = events
    assert progress and all(event.HasField("progress") for event in progress)
    assert all(0 <= e.progress.done <= e.progress.total or not e.progress.total for e in progress)
    assert last.HasField("index")
    index = last.index
    assert (index.collection, index.field, index.ready) == (collection, f"data.{key}", True)
    assert index.index_name == index_name((key,)) and index.create_time.seconds > 0

    assert indexes(stubs, collection=collection) == [index]
    assert index in indexes(stubs)
    again = build(stubs, collection, f"data.{key}")[-1].index
    assert again == index  # declaring it again returns the same declaration

    assert list_ids(stubs, collection, filter=f'data.{key} = "v1"') == [
        f"r{i}" for i in sorted(range(1, 30, 3), key=lambda i: f"r{i}")
    ]
    drop(stubs, collection, f"data.{key}")
    assert indexes(stubs, collection=collection) == []
    expect_error(
        lambda: drop(stubs, collection, f"data.{key}"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"
    )
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(entity="index", entity_id=f"{collection}/data.{key}")
    ).entries
    assert [entry.action for entry in audit] == ["drop_index", "create_index"]


TRICKY: dict[str, dict[str, Any]] = {
    "s": {"f": "1"},
    "n": {"f": 1},
    "x": {"f": 1.0},
    "t": {"f": True},
    "z": {"f": None},
    "o": {"f": {"a": 1}},
    "m": {"g": "1"},
    "q": {"f": "2", "g": "1"},
    "d": {"h": {"f": "1"}, "f": "1"},
}
"""Values whose type or presence an equality filter on data.f must tell apart."""

FILTERS = [
    'data.f = "1"',
    "data.f = 1",
    "data.f = true",
    "data.f = null",
    'NOT data.f = "1"',
    'data.f = "1" OR data.g = "1"',
    'data.h.f = "1"',
    'data.f != "1"',
]


def test_answers_are_the_same_with_and_without_the_index(stubs, collection):
    create_many(stubs, collection, TRICKY)
    before = {text: list_ids(stubs, collection, filter=text) for text in FILTERS}
    assert before['data.f = "1"'] == ["d", "s"] and before["data.f = 1"] == ["n", "x"]
    assert before["data.f = null"] == ["m", "z"]
    for field in ("data.f", "data.h.f"):
        assert build(stubs, collection, field)[-1].index.ready
    after = {text: list_ids(stubs, collection, filter=text) for text in FILTERS}
    try:
        assert after == before
    finally:
        for field in ("data.f", "data.h.f"):
            drop(stubs, collection, field)


def plan(server: StrataProcess, collection: str, text: str) -> str:
    """EXPLAIN of the ListRecords statement the server runs for `text`, compiled as
    the server compiles it, on the server's database."""
    query = ListQuery(collection, parse_filter(text), parse_order_by(""), 50)
    if server.database_url.startswith("sqlite"):
        path = server.database_url.removeprefix("sqlite:///")
        statement, params, _ = list_statement("default", query)
        with sqlite3.connect(path) as conn:
            conn.execute("ANALYZE")
            rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
        return "\n".join(str(row[-1]) for row in rows)

    async def explain() -> str:
        async with await psycopg.AsyncConnection.connect(server.database_url) as conn:
            await conn.set_autocommit(True)
            await conn.execute("ANALYZE records")
            dialect = await IndexedPaths().dialect(conn)  # reads the catalog, as the server
            sql = compile_list(dialect, query)
            statement = queries.list_records(sql.key_columns, sql.where, sql.order_by)
            params = ["default", collection, "now", *sql.params, 51]
            cursor = await conn.execute(f"EXPLAIN {statement}", params)
            return "\n".join(str(row[0]) for row in await cursor.fetchall())

    return asyncio.run(explain())


@pytest.mark.slow
def test_list_records_plan_uses_the_index(stubs, server, collection):
    key = unique("k")
    for start in range(0, 2000, 1000):  # two Commits: the records are the setting, not the test
        commit(
            stubs,
            [
                create_write(collection, f"r{i:04}", {key: f"v{i % 100}", "n": i})
                for i in range(start, start + 1000)
            ],
        )
    text = f'data.{key} = "v7"'
    name = index_name((key,))
    assert name not in plan(server, collection, text)
    build(stubs, collection, f"data.{key}")
    try:
        used = plan(server, collection, text)
        assert name in used, used
        assert len(list_ids(stubs, collection, filter=text, page_size=100)) == 20
    finally:
        drop(stubs, collection, f"data.{key}")
    assert name not in plan(server, collection, text)


def test_one_index_serves_every_collection_declaring_the_field(stubs, collection):
    other = f"{collection}_b"
    key = unique("k")
    create_many(stubs, collection, {"a": {key: 1}})
    create_many(stubs, other, {"b": {key: 1}})
    first = build(stubs, collection, f"data.{key}")[-1].index
    second = build(stubs, other, f"data.{key}")[-1].index
    assert first.index_name == second.index_name
    drop(stubs, collection, f"data.{key}")
    # Still declared for `other`, so still built and used there.
    assert [i.ready for i in indexes(stubs, collection=other)] == [True]
    assert list_ids(stubs, other, filter=f"data.{key} = 1") == ["b"]
    drop(stubs, other, f"data.{key}")
    assert indexes(stubs, collection=other) == []


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("", "required"),
        ("status", "inside data"),
        ("data", "inside data"),
        ("data.", "inside data"),
        ("data.a-b", "letters, digits"),
        ("data.a..b", "letters, digits"),
        ("id", "inside data"),
        ("data." + ".".join("k" * 9), "at most 8"),
        ("data." + "k" * 129, "letters, digits"),
    ],
)
def test_bad_fields(stubs, collection, field, fragment):
    for call in (
        lambda: build(stubs, collection, field),
        lambda: drop(stubs, collection, field),
    ):
        _, bad = expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, field="field")
        assert bad is not None
        assert fragment in bad.field_violations[0].description
    assert indexes(stubs, collection=collection) == []


def test_bad_collection_and_namespace(stubs):
    for call in (
        lambda: build(stubs, "", "data.a"),
        lambda: build(stubs, "9x", "data.a"),
        lambda: drop(stubs, "", "data.a"),
    ):
        expect_error(call, grpc.StatusCode.INVALID_ARGUMENT, field="collection")
    expect_error(
        lambda: indexes(stubs, namespace="Bad!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: build(stubs, "c", "data.a", namespace="Bad!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )


def test_concurrent_declarations_of_one_index_all_succeed(stubs, collection):
    """Callers declaring the same index at once all get it (the fuzz suite found the
    late ones answered INTERNAL on PostgreSQL: their statement's snapshot predates
    the winner's commit, so it saw neither its own insert nor the winner's row)."""
    keys = [unique("k") for _ in range(4)]
    create_many(stubs, collection, {"r1": dict.fromkeys(keys, "v")})

    def declare(key: str) -> admin_pb2.Index:
        return build(stubs, collection, f"data.{key}")[-1].index

    with ThreadPoolExecutor(12) as pool:
        declared = list(pool.map(declare, [key for key in keys for _ in range(12)]))
    assert {(i.field, i.create_time.ToNanoseconds()) for i in declared} == {
        (i.field, i.create_time.ToNanoseconds()) for i in indexes(stubs, collection=collection)
    }
    assert len(indexes(stubs, collection=collection)) == len(keys)
