"""The Backend port: facts, ping, the shared secrets, pool figures."""

from __future__ import annotations

import asyncio

from strata_server.storage.composite import Storage


async def test_facts_name_the_engine_and_the_newest_migration(
    storage: Storage, engine: str
) -> None:
    facts = await storage.facts()
    assert facts.backend == engine
    assert facts.schema_version not in ("", "unknown", "memory")
    assert {"records", "queue", "transcripts", "artifacts", "search"} <= set(facts.capabilities)
    await storage.ping()


async def test_the_first_secret_kept_is_everyone_s(storage: Storage) -> None:
    one, two, three, four = (bytes([n]) * 32 for n in range(1, 5))
    first, second = await asyncio.gather(
        storage.shared_secret("key", one), storage.shared_secret("key", two)
    )
    assert first == second and first in (one, two)
    assert await storage.shared_secret("key", three) == first
    assert await storage.shared_secret("other", four) == four


async def test_pool_figures(storage: Storage) -> None:
    await storage.ping()
    stats = storage.pool_stats()
    assert set(stats) == {"size", "idle", "waiting", "requests"}
    assert stats["size"] >= 1 and stats["requests"] >= 1
