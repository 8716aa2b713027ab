"""The search index port: each kind's full-text search, the texts of the hits a
page shows (for their snippets), and the text of text artifacts that the
artifact-text search reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strata_server.core.search_rules import KindHit, KindQuery, SearchKind, Target


class SearchIndex(Protocol):
    """Full-text search over one engine's indexes (SQLite FTS5, PostgreSQL
    tsvector), one kind at a time; services/search_service.py merges the kinds."""

    async def search_kind(self, namespace: str, query: KindQuery) -> list[KindHit]:
        """The best `query.limit` hits of `query.kind`, best first, ties in target
        order; none when the query has no searchable word."""
        ...

    async def hit_texts(
        self, namespace: str, kind: SearchKind, targets: Sequence[Target]
    ) -> dict[Target, list[str]]:
        """What each hit of `kind` matched in, by target (a target gone since is left
        out): a record's string values, an entry's content, an artifact's name and
        labels (SEARCH_KIND_ARTIFACT) or its indexed text (SEARCH_KIND_ARTIFACT_TEXT)."""
        ...

    async def set_artifact_text(self, namespace: str, artifact_id: str, text: str) -> bool:
        """Index `text` as the artifact's content (replacing any); False when the
        artifact is gone."""
        ...

    async def indexed_artifacts(self, namespace: str, ids: Sequence[str]) -> set[str]:
        """Of the artifacts `ids` of the namespace, those whose text is indexed
        (ReindexArtifacts skips them unless it rebuilds)."""
        ...
