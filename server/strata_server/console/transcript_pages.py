"""Transcripts: the list by owner, search, and a transcript's entries, streamed in
chunks as the reader scrolls and live-tailed while it is open; an archived one's
Restore (back to the hot tier).

The page lists entries up to the transcript's end as it stood when the page was
drawn; further chunks come as the reader scrolls (htmx, `revealed`). Entries
appended after that come over server-sent events from a following
ReadTranscript stream, in their own list below, so the two never interleave.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata import AsyncClient, Entry, StrataError
from strata._rpc import Page
from strata._transcript_requests import list_transcripts, search_transcripts
from strata_server.console.formats import marked, quote
from strata_server.console.gateway import Failure, page_of
from strata_server.console.view import (
    DEFAULT_NAMESPACE,
    NAMESPACE_COOKIE,
    TEMPLATES,
    TOKEN_COOKIE,
    back_to,
    console_of,
    field,
    no_store,
    number,
    open_view,
    posted,
    render,
)

CHUNK = 50
"""Entries drawn per chunk."""


async def transcripts(request: Request) -> Response:
    """The transcripts, newest first (of one owner if asked), or search hits."""
    owner = field(request.query_params, "owner")
    query = field(request.query_params, "q")
    token = request.query_params.get("page", "")
    async with open_view(request) as view:
        page: Page[Any]
        if query:
            within = field(request.query_params, "id") or None
            searched = search_transcripts(query, transcript_id=within, page_size=CHUNK)
            page = await page_of(view.client, searched, token)
            shown: dict[str, Any] = {"hits": [(hit, marked(hit.snippet)) for hit in page.items]}
        else:
            page = await page_of(view.client, list_transcripts(owner, page_size=CHUNK), token)
            shown = {"transcripts": page.items}
        return no_store(
            render(
                view,
                request,
                "transcripts.html",
                owner=owner,
                q=query,
                next_page=page.next_page_token,
                **shown,
            )
        )


async def transcript(request: Request) -> Response:
    """A transcript: its first chunk of entries, and the live tail when open."""
    id = request.path_params["id"]
    async with open_view(request) as view:
        found = await view.client.get_transcript(id)
        until = found.next_seq - 1
        entries = await _chunk(view.client, id, 1, until)
        return no_store(
            render(
                view,
                request,
                "transcript.html",
                transcript=found,
                entries=entries,
                until=until,
                next_from=entries[-1].seq + 1 if entries else 1,
            )
        )


async def restore(request: Request) -> Response:
    """Bring an archived transcript back to the hot tier (RestoreTranscript); its
    page reads the same either way, so this is for what the hot tier is faster at."""
    await posted(request)
    id = request.path_params["id"]
    async with open_view(request) as view:
        await view.client.restore_transcript(id)
    return back_to(f"/transcripts/{quote(id)}", done=f"transcript {id} restored to the hot tier")


async def chunk(request: Request) -> Response:
    """The next chunk of entries (for the scroll loader), up to `until`."""
    id = request.path_params["id"]
    start = number(request.query_params.get("from"), 1)
    until = number(request.query_params.get("until"), 0)
    async with open_view(request) as view:
        entries = await _chunk(view.client, id, start, until)
        return no_store(
            render(
                view,
                request,
                "entries.html",
                transcript_id=id,
                entries=entries,
                until=until,
                next_from=entries[-1].seq + 1 if entries else start,
            )
        )


async def _chunk(client: AsyncClient, id: str, start: int, until: int) -> list[Entry]:
    """Entries `start`..`until`, at most CHUNK of them."""
    if start > until:
        return []
    found: list[Entry] = []
    async with client.read_transcript(id, from_seq=start) as entries:
        async for entry in entries:
            if entry.seq > until:
                break
            found.append(entry)
            if len(found) == CHUNK:
                break
    return found


async def live(request: Request) -> Response:
    """Server-sent events: each entry appended from `from` on, as an `entry`
    event carrying its HTML; a `sealed` event when the transcript is sealed."""
    id = request.path_params["id"]
    start = number(request.query_params.get("from"), 1)
    console = console_of(request)
    token = request.cookies.get(TOKEN_COOKIE) or None
    namespace = request.cookies.get(NAMESPACE_COOKIE) or DEFAULT_NAMESPACE
    template = TEMPLATES.get_template("entry.html")

    async def events() -> AsyncIterator[ServerSentEvent]:
        client = console.upstream.client(token, namespace)
        try:
            async with client.follow(id, from_seq=start) as entries:
                async for entry in entries:
                    yield ServerSentEvent(template.render(entry=entry), event="entry")
            yield ServerSentEvent("<p class='muted'>sealed: no more entries</p>", event="sealed")
        except StrataError as error:
            failure = Failure.of(error)
            text = html.escape(f"{failure.status} {failure.reason} {failure.message}")
            yield ServerSentEvent(f"<p class='failure'>{text}</p>", event="sealed")
        finally:
            await client.close()

    return EventSourceResponse(events(), ping=10, headers={"cache-control": "no-store"})


ROUTES: list[BaseRoute] = [
    Route("/transcripts", transcripts),
    Route("/transcripts/{id}", transcript),
    Route("/transcripts/{id}/entries", chunk),
    Route("/transcripts/{id}/restore", restore, methods=["POST"]),
    Route("/transcripts/{id}/live", live),
]
