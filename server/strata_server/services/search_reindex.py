"""AdminService.ReindexArtifacts: the artifact-text index built for the artifacts that
have none (docs/search.md, "Re-indexing").

Uploads index a text artifact's text as they store it; artifacts stored before the
index existed (migration 0018) and those ImportNamespace writes have none. A run
walks the artifacts of a namespace (or of every namespace) in id order, a page at a
time, asks the index which of the page's text artifacts already have text (all of
them are redone with `rebuild`), and indexes the others one by one, each in its own
short transaction. Nothing is remembered between runs: what a stopped run indexed
is indexed, so running again continues where it stopped, and a run over an
index that is complete only reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping

from strata_server.core.artifact_rules import Artifact, ArtifactListQuery
from strata_server.core.models import Progress
from strata_server.core.search_rules import wants_text
from strata_server.core.values import frozen
from strata_server.services.search_service import Indexed, Searches
from strata_server.storage.ports import ArtifactStore

PAGE = 500
"""Artifacts per page of the walk (one question to the index per page)."""
PHASE = "indexing artifact text"


ReindexReport = Mapping[str, int]
"""What one run did, by the report's field names: "artifacts" looked at, and of
them "already_indexed" and each `Indexed` outcome."""


@frozen
class Reindexing:
    """Runs ReindexArtifacts over the artifact rows and the search use cases."""

    artifacts: ArtifactStore
    searches: Searches

    async def run(
        self, namespace: str | None, *, rebuild: bool
    ) -> AsyncIterator[Progress | ReindexReport]:
        """Progress after each page (the total is not known ahead), then the report.
        `namespace` None: every namespace."""
        counts: Counter[str] = Counter()
        yield Progress(PHASE, 0, 0, "artifacts")
        async for page in self._pages(namespace):
            counts["artifacts"] += len(page)
            texts = [a for a in page if wants_text(a.content_type) and a.size]
            counts[Indexed.NOT_TEXT] += len(page) - len(texts)
            if texts and not rebuild:
                done = await self.searches.index.indexed_artifacts(
                    page[0].namespace, [a.id for a in texts]
                )
                counts["already_indexed"] += len(done)
                texts = [a for a in texts if a.id not in done]
            for artifact in texts:
                counts[await self.searches.index_text(artifact)] += 1
            yield Progress(PHASE, counts["artifacts"], 0, "artifacts")
        yield {str(key): value for key, value in counts.items()}

    async def _pages(self, namespace: str | None) -> AsyncIterator[list[Artifact]]:
        """The artifacts in pages of at most PAGE, each of one namespace."""
        if namespace is not None:
            after: str | None = None
            while True:
                page = await self.artifacts.list_artifacts(
                    namespace, ArtifactListQuery(PAGE, after=after)
                )
                if page.items:
                    yield list(page.items)
                if page.last_key is None:
                    return
                after = page.items[-1].id
        pending: list[Artifact] = []
        async for artifact in self.artifacts.all_artifacts():
            if pending and (len(pending) >= PAGE or pending[0].namespace != artifact.namespace):
                yield pending
                pending = []
            pending.append(artifact)
        if pending:
            yield pending
