"""One search across kinds (SearchService.Search), and the indexing of text
artifacts' content that the artifact-text kind searches.

A search asks the index for each kind's best `offset + limit + 1` hits (targets
and ranks only), merges them (core/search_rules.py defines the ranking across
kinds), serves the slice [offset, offset + limit) and reads the texts of those
hits alone for their snippets: every hit that can be on the page is among its kind's
best `offset + limit`, so the slice is exact, and the one more says whether a page
follows. The kinds are searched at once, each on a connection of its own (a
SQLite reader, a PostgreSQL pooled connection), so a search takes about as long
as its slowest kind rather than the sum of them.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import replace

import structlog

from strata_server.core.artifact_rules import Artifact
from strata_server.core.errors import StrataError
from strata_server.core.models import Page
from strata_server.core.search_rules import (
    KindQuery,
    SearchHit,
    SearchRequest,
    indexable_text,
    merged,
    snippet,
    wants_text,
)
from strata_server.core.values import frozen
from strata_server.storage.ports import BlobStore, SearchIndex

log = structlog.get_logger("strata.search")


class Indexed(enum.StrEnum):
    """What indexing one artifact's text came to."""

    INDEXED = "indexed"
    NOT_TEXT = "not_text"
    """Not a text type, empty, or not text once read (nothing to index)."""
    FAILED = "failed"
    """Its bytes could not be read, or it is gone (logged)."""


@frozen
class Searches:
    """The search use cases over the search index and (for artifact text) the blob
    store. `text_max_bytes` is how much of a text artifact's content is indexed."""

    index: SearchIndex
    blobs: BlobStore
    text_max_bytes: int

    async def search(
        self, namespace: str, request: SearchRequest, limit: int, offset: int
    ) -> Page[SearchHit]:
        """The page of hits at `offset`; `last_key` is set when more follow."""
        wanted = offset + limit + 1
        kinds = sorted(request.kinds)
        found = await asyncio.gather(
            *(self.index.search_kind(namespace, KindQuery(kind, request, wanted)) for kind in kinds)
        )
        hits = merged(dict(zip(kinds, found, strict=True)))
        page = await self._with_snippets(namespace, request.text, hits[offset : offset + limit])
        return Page(page, (offset + limit,) if len(hits) > offset + limit else None)

    async def _with_snippets(
        self, namespace: str, text: str, hits: Sequence[SearchHit]
    ) -> list[SearchHit]:
        """The page's hits with their snippets, from one read of texts per kind."""
        kinds = sorted({hit.kind for hit in hits})
        found = await asyncio.gather(
            *(
                self.index.hit_texts(namespace, kind, [h.target for h in hits if h.kind is kind])
                for kind in kinds
            )
        )
        texts = {
            (kind, target): values
            for kind, by_target in zip(kinds, found, strict=True)
            for target, values in by_target.items()
        }
        return [
            replace(hit, snippet=snippet(texts.get((hit.kind, hit.target), []), text))
            for hit in hits
        ]

    async def index_artifact_text(self, artifact: Artifact) -> None:
        """Index a text artifact's text after its upload (`index_text`)."""
        await self.index_text(artifact)

    async def index_text(self, artifact: Artifact) -> Indexed:
        """Index the first `text_max_bytes` of a text artifact's content, read as a
        stream of at most that many bytes from either blob store. Indexing is
        derived data: a failure is logged and leaves the artifact searchable by
        name and labels, never fails the upload (or re-index) that asked."""
        if not self.text_max_bytes or not artifact.size or not wants_text(artifact.content_type):
            return Indexed.NOT_TEXT
        try:
            head = await self._head(artifact)
            text = indexable_text(artifact.content_type, head)
            if not text:
                return Indexed.NOT_TEXT
            if await self.index.set_artifact_text(artifact.namespace, artifact.id, text):
                return Indexed.INDEXED
        except StrataError as error:
            log.warning(
                "artifact text not indexed",
                namespace=artifact.namespace,
                artifact=artifact.id,
                error=str(error),
            )
        return Indexed.FAILED

    async def _head(self, artifact: Artifact) -> bytes:
        end = min(artifact.size, self.text_max_bytes)
        pieces = await self.blobs.open(artifact.blob, 0, end)
        head = bytearray()
        try:
            async for piece in pieces:
                head += piece[: end - len(head)]
                if len(head) >= end:
                    break
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]
        return bytes(head)
