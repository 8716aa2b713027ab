"""The write figures of bench/records.py: CreateRecord and Commit of 100 creates, each
beside a direct psycopg transaction that writes the same rows.

The baselines write what Strata writes for a create, column for column: the record
row (namespace, collection, id, data as jsonb, version 1, create and update time, no
expiry, no owner) and its audit row (time, actor, action "create", entity "record",
"collection/id", version 1, the changed fields `data.<key>` sorted, no request id),
in one transaction, so the table's triggers (quotas, the search column) fire for both
sides alike. A single create is two INSERTs; a batch of 100 is one multi-row INSERT
per table (unnest of arrays, binary parameters), the way Strata writes a commit.

Each side starts a call from its data in its own in-memory form, built before the
clock starts: Strata's client from the request message (its serialization is in the
call), the direct one from the dicts (their JSON text and audit fields are in it).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from _harness import Row, Stats, latency_stats
from psycopg_pool import AsyncConnectionPool

from strata.v1 import records_pb2, records_pb2_grpc, transaction_pb2, transaction_pb2_grpc
from strata_server.storage.events_relay import POSTGRES_CHANNEL
from strata_server.storage.postgres import queries

CREATE_COLLECTION, COMMIT_COLLECTION = "bench_create", "bench_commit"
ACTOR = "anonymous"
"""The audit actor Strata writes for a call with no token and no x-strata-actor."""

INSERT_RECORD = """
INSERT INTO records (namespace, collection, id, data, version, create_time, update_time,
                     expire_time, owner)
VALUES (%s, %s, %s, %s::jsonb, 1, %s, %s, NULL, NULL)
"""
INSERT_AUDIT = """
INSERT INTO audit_log (namespace, time, actor, action, entity, entity_id, version,
                       changed_fields, request_id)
VALUES (%s, %s, %s, 'create', 'record', %s, 1, %s::jsonb, NULL)
"""
INSERT_RECORDS = """
INSERT INTO records (namespace, collection, id, data, version, create_time, update_time,
                     expire_time, owner)
SELECT %s, %s, w.id, w.data::jsonb, 1, %s, %s, NULL, NULL
FROM unnest(%b::text[], %b::text[]) AS w(id, data)
"""
INSERT_AUDITS = """
INSERT INTO audit_log (namespace, time, actor, action, entity, entity_id, version,
                       changed_fields, request_id)
SELECT %s, %s, %s, 'create', 'record', a.entity_id, 1, a.changed_fields::jsonb, NULL
FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS a(entity_id, changed_fields, ordinal)
ORDER BY a.ordinal
"""

Prepared = Callable[[], Awaitable[object]]
"""One call, built and ready: awaiting it is what is timed."""


def changed(data: dict[str, Any]) -> str:
    """The audit entry's changed fields of a create, as Strata stores them."""
    return json.dumps(sorted(f"data.{key}" for key in data))


async def alternating(
    rounds: int, per_round: int, sides: dict[str, Callable[[], Prepared]]
) -> dict[str, Stats]:
    """Each side's calls one at a time, `per_round` per side per round, the sides
    alternating for `rounds` rounds (so drifting background load hits both); each
    call is built untimed, then timed alone."""
    durations: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, build in sides.items():
            for _ in range(per_round):
                call = build()
                began = time.perf_counter()
                await call()
                durations[name].append(time.perf_counter() - began)
    return {name: latency_stats(values) for name, values in durations.items()}


def time_row(name: str, strata: Stats, base: Stats, max_ratio: float) -> list[Row]:
    """p50 with its ratio to the baseline's and its target, then p99."""
    ratio = strata.p50_ms / base.p50_ms
    return [
        Row(
            f"{name} p50",
            f"{strata.p50_ms:.2f} ms",
            f"{base.p50_ms:.2f} ms",
            f"{ratio:.2f}x the time",
            f"≤ {max_ratio:g}x",
            "pass" if ratio <= max_ratio else "miss",
        ),
        Row(f"{name} p99", f"{strata.p99_ms:.2f} ms", f"{base.p99_ms:.2f} ms"),
    ]


def persist_params(
    namespace: str, collection: str, keys: list[str], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The parameters Strata's one create statement (queries.PERSIST_NEW) takes for
    new records `keys` holding `rows`, as storage/postgres/commit.py builds them."""
    at = datetime.now(UTC)
    n = len(keys)
    return {
        "namespace": namespace,
        "now": at,
        "actor": ACTOR,
        "request_id": None,
        "insert_collection": [collection] * n,
        "insert_id": keys,
        "insert_data": [json.dumps(row) for row in rows],
        "insert_version": [1] * n,
        "insert_create_time": [at] * n,
        "insert_update_time": [at] * n,
        "insert_expire_time": [None] * n,
        "insert_owner": [None] * n,
        "audit_action": ["create"] * n,
        "audit_entity": ["record"] * n,
        "audit_entity_id": [f"{collection}/{key}" for key in keys],
        "audit_version": [1] * n,
        "audit_changed_fields": [changed(row) for row in rows],
        # The watches' wakeup Strata's own write sends from the same statement.
        "channel": POSTGRES_CHANNEL,
        "notices": [f"bench-records records:{namespace}:{collection}"],
    }


async def bench_writes(
    namespace: str,
    records: records_pb2_grpc.RecordServiceStub,
    txn: transaction_pb2_grpc.TransactionServiceStub,
    noop: records_pb2_grpc.RecordServiceStub,
    url: str,
    document: Callable[[int, random.Random], dict[str, Any]],
    *,
    creates: int,
    commits: int,
    commit_size: int,
) -> list[Row]:
    """CreateRecord beside one direct create transaction, then Commit of `commit_size`
    creates beside one direct transaction of the same rows; `creates` and `commits`
    calls per side, in five alternating rounds after an untimed warm-up. In the same
    rounds, the floor's two parts: a call to the no-op servicer, and Strata's own
    statement for the same rows (queries.PERSIST_NEW) run straight from psycopg."""
    rng = random.Random(2)
    ids = itertools.count()

    def new_id(prefix: str) -> str:
        return f"{prefix}{next(ids):08d}"

    def strata_create() -> Prepared:
        data = document(0, rng)
        request = records_pb2.CreateRecordRequest(
            namespace=namespace, collection=CREATE_COLLECTION, record_id=new_id("s")
        )
        request.data.update(data)
        return lambda: records.CreateRecord(request)

    def strata_commit() -> Prepared:
        request = transaction_pb2.CommitRequest(namespace=namespace)
        for _ in range(commit_size):
            create = request.writes.add().create
            create.collection, create.record_id = COMMIT_COLLECTION, new_id("s")
            create.data.update(document(0, rng))
        return lambda: txn.Commit(request)

    def noop_call() -> Prepared:
        request = records_pb2.GetRecordRequest(id="noop")
        return lambda: noop.GetRecord(request)

    async with AsyncConnectionPool(
        url, min_size=1, max_size=1, open=False, kwargs={"autocommit": True, "prepare_threshold": 0}
    ) as pool:
        await pool.wait()

        def direct_create() -> Prepared:
            data, id = document(0, rng), new_id("d")

            async def call() -> None:
                text, fields, at = json.dumps(data), changed(data), datetime.now(UTC)
                async with pool.connection() as conn, conn.transaction():
                    await conn.execute(
                        INSERT_RECORD, (namespace, CREATE_COLLECTION, id, text, at, at)
                    )
                    await conn.execute(
                        INSERT_AUDIT, (namespace, at, ACTOR, f"{CREATE_COLLECTION}/{id}", fields)
                    )

            return call

        def direct_commit() -> Prepared:
            rows = [document(0, rng) for _ in range(commit_size)]
            keys = [new_id("d") for _ in rows]

            async def call() -> None:
                texts, fields = [json.dumps(d) for d in rows], [changed(d) for d in rows]
                entities = [f"{COMMIT_COLLECTION}/{id}" for id in keys]
                at = datetime.now(UTC)
                async with pool.connection() as conn, conn.transaction():
                    await conn.execute(
                        INSERT_RECORDS, (namespace, COMMIT_COLLECTION, at, at, keys, texts)
                    )
                    await conn.execute(INSERT_AUDITS, (namespace, at, ACTOR, entities, fields))

            return call

        def statement(collection: str, size: int) -> Callable[[], Prepared]:
            def build() -> Prepared:
                rows = [document(0, rng) for _ in range(size)]
                keys = [new_id("p") for _ in rows]

                async def call() -> None:
                    params = persist_params(namespace, collection, keys, rows)
                    async with pool.connection() as conn:
                        await conn.execute(queries.PERSIST_NEW, params)

                return call

            return build

        create_sides = {
            "strata": strata_create,
            "psycopg": direct_create,
            "noop": noop_call,
            "statement": statement(CREATE_COLLECTION, 1),
        }
        commit_sides = {
            "strata": strata_commit,
            "psycopg": direct_commit,
            "noop": noop_call,
            "statement": statement(COMMIT_COLLECTION, commit_size),
        }
        await alternating(1, max(1, creates // 50), create_sides)
        created = await alternating(5, max(1, creates // 5), create_sides)
        await alternating(1, 2, commit_sides)
        committed = await alternating(5, max(1, commits // 5), commit_sides)
    return [
        *time_row("CreateRecord c=1", created["strata"], created["psycopg"], 1.5),
        floor_row("CreateRecord c=1", created),
        *time_row(
            f"Commit of {commit_size} creates", committed["strata"], committed["psycopg"], 1.5
        ),
        floor_row(f"Commit of {commit_size} creates", committed),
    ]


def floor_row(name: str, stats: dict[str, Stats]) -> Row:
    """What a write through Strata cannot go below: the no-op call's p50 plus its
    one statement's p50 run directly, against Strata's p50 and the target's."""
    floor = stats["noop"].p50_ms + stats["statement"].p50_ms
    strata, direct = stats["strata"].p50_ms, stats["psycopg"].p50_ms
    return Row(
        f"{name} floor p50: no-op call {stats['noop'].p50_ms:.2f} ms + Strata's statement "
        f"run directly {stats['statement'].p50_ms:.2f} ms",
        f"{strata:.2f} ms",
        f"{floor:.2f} ms",
        f"{strata / floor:.2f}x the time",
        f"floor = {floor / direct:.2f}x of direct",
    )
