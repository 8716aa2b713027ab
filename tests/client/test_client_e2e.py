"""strata.Client and strata.AsyncClient against real servers on both shapes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

import strata
from strata import writes
from tests.support.server import StrataProcess


def test_sync_client_round_trip(server: StrataProcess, collection: str) -> None:
    with strata.Client(server.target, actor="e2e-test") as client:
        first = client.create_record(collection, {"state": "open", "rank": 3}, record_id="t1")
        assert (first.id, first.version, first.data) == ("t1", 1, {"state": "open", "rank": 3})
        updated = client.update_record(
            collection,
            "t1",
            {"state": "closed"},
            update_mask=["data.state"],
            expected_version=1,
        )
        assert updated.version == 2
        assert updated.data == {"state": "closed", "rank": 3}
        with pytest.raises(strata.VersionConflict) as conflict:
            client.update_record(collection, "t1", {"state": "x"}, expected_version=1)
        assert conflict.value.current_version == 2
        with pytest.raises(strata.NotFound):
            client.get_record(collection, "missing")
        with pytest.raises(strata.InvalidArgument) as bad:
            client.list_records(collection, filter="data.state ==").__next__()
        assert "filter" in [field for field, _ in bad.value.violations]
        records, missing = client.batch_get_records(collection, ["t1", "nope"])
        assert [r.id for r in records] == ["t1"] and missing == ["nope"]
        client.delete_record(collection, "t1", expected_version=2)
        assert client.count_records(collection) == 0


def test_sync_client_owners(server: StrataProcess, collection: str) -> None:
    with strata.Client(server.target) as client:
        made = client.create_record(collection, {"n": 1}, record_id="o1", owner="ada")
        assert made.owner == "ada"
        assert client.update_record(collection, "o1", {"n": 2}).owner == "ada"  # kept
        assert client.update_record(collection, "o1", {"n": 3}, owner="bob").owner == "bob"
        [moved, added] = client.commit(
            [
                writes.update(collection, "o1", {"n": 4}, owner=""),
                writes.create(collection, {}, record_id="o2", owner="cy"),
            ]
        )
        assert isinstance(moved, strata.Record) and moved.owner == ""
        assert isinstance(added, strata.Record) and added.owner == "cy"
        assert [r.id for r in client.list_records(collection, filter='owner = "cy"')] == ["o2"]
        with pytest.raises(strata.InvalidArgument):
            client.create_record(collection, {}, owner="x" * 257)


def test_sync_client_iterates_every_page(server: StrataProcess, collection: str) -> None:
    with strata.Client(server.target) as client:
        client.commit(
            [writes.create(collection, {"n": n}, record_id=f"r{n:03}") for n in range(57)]
        )
        seen = [r.id for r in client.list_records(collection, order_by="data.n desc", page_size=10)]
        assert seen == [f"r{n:03}" for n in reversed(range(57))]
        assert client.count_records(collection, "data.n >= 50") == 7


def test_commit_is_atomic_and_idempotent(server: StrataProcess, collection: str) -> None:
    with strata.Client(server.target) as client:
        request_id = strata.new_request_id()
        batch = [
            writes.create(collection, {"k": 1}, record_id="a"),
            writes.create(collection, {"k": 2}, record_id="b"),
        ]
        first = client.commit(batch, request_id=request_id)
        again = client.commit(batch, request_id=request_id)
        assert [r.version for r in first] == [r.version for r in again] == [1, 1]
        with pytest.raises(strata.AlreadyExists) as exists:
            client.commit(
                [
                    writes.create(collection, {}, record_id="c"),
                    writes.create(collection, {}, record_id="a"),
                ]
            )
        assert exists.value.write_index == 1
        _, missing = client.batch_get_records(collection, ["c"])
        assert missing == ["c"]


def test_expiry_and_search(server: StrataProcess, collection: str) -> None:
    with strata.Client(server.target) as client:
        client.create_record(collection, {"text": "printer on fire"}, record_id="p")
        client.create_record(
            collection,
            {"text": "coffee machine"},
            record_id="c",
            expire_time=datetime.now(UTC) + timedelta(hours=1),
        )
        hits = list(client.search_records(collection, "printer fire"))
        assert [record.id for record, _ in hits] == ["p"]
        assert client.get_record(collection, "c").expire_time is not None


def test_async_client(server: StrataProcess, collection: str) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(server.target, namespace=f"ns-{uuid.uuid4().hex[:8]}") as c:
            created = await asyncio.gather(
                *(c.create_record(collection, {"n": n}, record_id=f"a{n}") for n in range(20))
            )
            assert {r.version for r in created} == {1}
            listed = [
                r.id async for r in c.list_records(collection, filter="data.n < 5", page_size=2)
            ]
            assert listed == [f"a{n}" for n in range(5)]
            with pytest.raises(strata.VersionConflict):
                await c.delete_record(collection, "a1", expected_version=7)
            info = await c.server_info()
            assert "records" in info.capabilities

    asyncio.run(scenario())


def test_unreachable_server_is_unavailable_after_retries() -> None:
    config = strata.ClientConfig(
        target="127.0.0.1:1",
        timeout=2.0,
        retry=strata.RetryPolicy(max_attempts=2, initial_backoff=0.01),
    )
    with strata.Client(config=config) as client, pytest.raises(strata.Unavailable):
        client.get_record("c", "x")


def test_cache_methods(server: StrataProcess) -> None:
    key = f"k-{uuid.uuid4().hex[:8]}"
    with strata.Client(server.target, namespace="client-cache") as client:
        assert client.cache_get(key) is None
        client.cache_set(key, b"\x00bytes", ttl=timedelta(seconds=0.5))
        assert client.cache_get(key) == b"\x00bytes"
        assert client.cache_get(key, namespace="elsewhere") is None
        assert client.cache_delete(key) is True
        assert client.cache_delete(key) is False
        client.cache_set(key, b"short", ttl=timedelta(seconds=0.3))
        asyncio.run(asyncio.sleep(0.5))
        assert client.cache_get(key) is None
        with pytest.raises(strata.InvalidArgument):
            client.cache_set("", b"x")
        with pytest.raises(TypeError):
            client.cache_set(key, b"x", ttl=5)  # type: ignore[arg-type]

    async def async_calls() -> None:
        async with strata.AsyncClient(server.target) as client:
            await client.cache_set(key, b"async")
            assert await client.cache_get(key) == b"async"
            assert await client.cache_delete(key)

    asyncio.run(async_calls())
