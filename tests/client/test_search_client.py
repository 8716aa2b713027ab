"""Search across kinds in the Python client, end to end on both shapes:
`Client.search` and `AsyncClient.search` page through `strata.SearchHit`s."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Iterator

import pytest

import strata
from tests.support.server import StrataProcess


@pytest.fixture
def client(server: StrataProcess) -> Iterator[strata.Client]:
    with strata.Client(server.target, actor="search-test") as client:
        yield client


def test_search_yields_hits_of_every_kind_and_narrows_by_kind(
    client: strata.Client, server: StrataProcess
) -> None:
    namespace = f"s{uuid.uuid4().hex[:12]}"
    word = f"w{uuid.uuid4().hex[:8]}"
    client.create_record("notes", {"text": f"a {word}"}, record_id="n1", namespace=namespace)
    client.create_transcript("t1", owner="ada", namespace=namespace)
    client.append("t1", f"the {word} again", namespace=namespace)
    made = client.upload(
        io.BytesIO(f"log {word}\n".encode()),
        owner="ada",
        kind="log",
        name="run.log",
        content_type="text/plain",
        namespace=namespace,
    )

    hits = list(client.search(word, page_size=2, namespace=namespace))
    assert all(isinstance(hit, strata.SearchHit) for hit in hits)
    assert sorted((hit.kind, hit.target) for hit in hits) == [
        ("artifact_text", (made.id, "run.log")),
        ("record", ("notes", "n1")),
        ("transcript_entry", ("t1", 1)),
    ]
    assert {hit.score for hit in hits} == {1.0}
    assert all(f"**{word}**" in hit.snippet for hit in hits)
    owned = [hit.kind for hit in client.search(word, owner="ada", namespace=namespace)]
    assert sorted(owned) == ["artifact_text", "transcript_entry"]

    async def narrowed() -> list[strata.SearchHit]:
        async with strata.AsyncClient(server.target) as aclient:
            pages = aclient.search(word, kinds=["record"], namespace=namespace)
            return [hit async for hit in pages]

    assert [hit.target for hit in asyncio.run(narrowed())] == [("notes", "n1")]
    with pytest.raises(ValueError, match="unknown search kinds"):
        client.search(word, kinds=["records"])
