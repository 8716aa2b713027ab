"""Search: one query across every kind (SearchService.Search), narrowed by kinds,
collections and owner, its ranked hits each linking to the page of what matched.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata import SearchHit
from strata._rpc import Page
from strata._search_requests import search as searched
from strata.search import KINDS
from strata_server.console.formats import marked, quote
from strata_server.console.gateway import page_of
from strata_server.console.view import field, form_page, open_view, refused

PAGE_SIZE = 25

KIND_LABELS = {
    "record": "records",
    "transcript_entry": "transcript entries",
    "artifact": "artifact names and labels",
    "artifact_text": "text artifacts' content",
}
"""The kinds the form offers (every one of `strata.search.KINDS`), as it names them."""


def link(hit: SearchHit) -> str:
    """The console page of what a hit matched: a record, an entry of a transcript
    (its anchor on the transcript's page), an artifact."""
    if hit.kind == "record":
        collection, id = hit.target
        return f"/records/{quote(str(collection))}/{quote(str(id))}"
    if hit.kind == "transcript_entry":
        transcript, seq = hit.target
        return f"/transcripts/{quote(str(transcript))}#entry-{seq}"
    return f"/artifacts/{quote(str(hit.target[0]))}"


async def search(request: Request) -> Response:
    """The search form and, once it has a query, a page of ranked hits."""
    params = request.query_params
    query, owner = field(params, "q"), field(params, "owner")
    kinds = [kind for kind in params.getlist("kind") if kind in KINDS]
    collections = [c for c in field(params, "collections").replace(",", " ").split() if c]
    async with open_view(request) as view:
        page: Page[SearchHit] | None = None
        failure = None
        if query:
            paged = searched(
                query, kinds=kinds, collections=collections, owner=owner, page_size=PAGE_SIZE
            )
            page, failure = await refused(page_of(view.client, paged, params.get("page", "")))
        hits = [(hit, link(hit), marked(hit.snippet)) for hit in page.items] if page else []
        return form_page(
            view,
            request,
            "search.html",
            failure,
            q=query,
            owner=owner,
            kinds=kinds,
            collections=" ".join(collections),
            labels=KIND_LABELS,
            hits=hits,
            searched=page is not None,
            next_page=page.next_page_token if page else "",
            query="&".join(
                f"{name}={quote(value)}" for name, value in params.multi_items() if name != "page"
            ),
        )


ROUTES: list[BaseRoute] = [Route("/search", search)]
