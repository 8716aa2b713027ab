"""The search index port: each kind's full-text search, and the text of text
artifacts that the artifact search reads."""

from __future__ import annotations

from typing import Protocol

from strata_server.core.search_rules import KindHit, KindQuery


class SearchIndex(Protocol):
    """Full-text search over one engine's indexes (SQLite FTS5, PostgreSQL
    tsvector), one kind at a time; services/search_service.py merges the kinds."""

    async def search_kind(self, namespace: str, query: KindQuery) -> list[KindHit]:
        """The best `query.limit` hits of `query.kind`, best first, ties in target
        order; none when the query has no searchable word."""
        ...

    async def set_artifact_text(self, namespace: str, artifact_id: str, text: str) -> bool:
        """Index `text` as the artifact's content (replacing any); False when the
        artifact is gone."""
        ...
