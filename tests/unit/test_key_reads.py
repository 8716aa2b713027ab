"""storage/postgres/key_reads.py: concurrent reads by key share statements, and each
caller still gets exactly its own answer (a record, None, or the statement's error).

The fetch here is a fake that records what it was asked and waits until released,
so the test decides when statements finish; the real statements run in
tests/ports/test_records.py against PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from strata_server.core.errors import Unavailable
from strata_server.core.models import Record
from strata_server.storage.postgres.key_reads import IN_FLIGHT, KeyReads

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def record(collection: str, id: str) -> Record:
    return Record("ns", collection, id, {"id": id}, 1, NOW, NOW, None, "")


class Statements:
    """A fetch whose statements finish when `release` is set (or fail with `error`)."""

    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.asked: list[tuple[str, tuple[str, ...]]] = []
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> dict[str, Record]:
        self.asked.append((collection, tuple(ids)))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return {id: record(collection, id) for id in ids if id in self.stored}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_read_runs_its_own_statement() -> None:
    statements = Statements({"a"})
    statements.release.set()
    reads = KeyReads(statements)
    assert await reads.get("ns", "c", "a") == record("c", "a")
    assert await reads.get("ns", "c", "missing") is None
    assert statements.asked == [("c", ("a",)), ("c", ("missing",))]


async def test_reads_beyond_the_free_statements_share_one_per_collection() -> None:
    stored = {f"r{i}" for i in range(0, 40, 2)}
    statements = Statements(stored)
    reads = KeyReads(statements)
    ids = [f"r{i}" for i in range(40)]
    gets = [asyncio.create_task(reads.get("ns", "c", id)) for id in ids]
    others = [asyncio.create_task(reads.get("ns", "d", id)) for id in ids[:3]]
    await settle()
    # The first IN_FLIGHT run alone; the rest wait, nothing shared yet.
    assert statements.asked == [("c", (id,)) for id in ids[:IN_FLIGHT]]
    statements.release.set()
    answers = await asyncio.gather(*gets)
    assert answers == [record("c", id) if id in stored else None for id in ids]
    assert [r.collection for r in await asyncio.gather(*others) if r] == ["d", "d"]
    shared = statements.asked[IN_FLIGHT:]
    assert sorted(shared) == sorted([("c", tuple(ids[IN_FLIGHT:])), ("d", tuple(ids[:3]))])


async def test_a_failed_statement_fails_every_read_it_answers() -> None:
    statements = Statements({"a"})
    reads = KeyReads(statements)
    gets = [asyncio.create_task(reads.get("ns", "c", f"k{i}")) for i in range(IN_FLIGHT + 3)]
    await settle()
    statements.error = Unavailable("database down")
    statements.release.set()
    outcomes = await asyncio.gather(*gets, return_exceptions=True)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    statements.error = None
    assert await reads.get("ns", "c", "a") == record("c", "a")  # nothing left stuck


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    statements = Statements({"a", "b"})
    reads = KeyReads(statements)
    first = [asyncio.create_task(reads.get("ns", "c", f"x{i}")) for i in range(IN_FLIGHT)]
    same = [asyncio.create_task(reads.get("ns", "c", "a")) for _ in range(2)]
    abandoned = asyncio.create_task(reads.get("ns", "c", "b"))
    await settle()
    abandoned.cancel()
    statements.release.set()
    await asyncio.gather(*first)
    assert await asyncio.gather(*same) == [record("c", "a")] * 2
    with pytest.raises(asyncio.CancelledError):
        await abandoned
