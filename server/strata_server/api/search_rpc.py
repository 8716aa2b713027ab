"""SearchService: parses a Search request into a checked `SearchRequest`, calls the
search use case (services/search_service.py) and renders its hits; nothing else."""

from __future__ import annotations

from dataclasses import KW_ONLY
from typing import Any

import grpc

from strata.v1 import search_pb2, search_pb2_grpc
from strata_server.api.convert import set_timestamp, to_datetime
from strata_server.api.page_tokens import paging
from strata_server.api.status_codes import rpcs
from strata_server.core import errors, validation
from strata_server.core.paging import PageTokens
from strata_server.core.search_rules import SearchHit, SearchKind, SearchRequest
from strata_server.core.values import frozen
from strata_server.services.search_service import Searches

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_SEARCH_PAGE = 20
_KINDS = {int(kind): kind for kind in SearchKind}


def search_request(request: search_pb2.SearchRequest) -> SearchRequest:
    """The request checked: every bad field is INVALID_ARGUMENT naming it."""
    text = validation.search_query(request.query)
    kinds: set[SearchKind] = set()
    for number in request.kinds:
        kind = _KINDS.get(number)
        if kind is None:
            raise errors.InvalidArgument.field(
                "kinds", f"{number} is not a search kind (SEARCH_KIND_RECORD .. _ARTIFACT_TEXT)"
            )
        kinds.add(kind)
    collections = tuple(
        dict.fromkeys(validation.collection(name, "collections") for name in request.collections)
    )
    if collections and kinds and SearchKind.RECORD not in kinds:
        raise errors.InvalidArgument.field(
            "collections", "narrows records only; add SEARCH_KIND_RECORD to kinds"
        )
    start = to_datetime(request.start_time, request.HasField("start_time"), "start_time")
    end = to_datetime(request.end_time, request.HasField("end_time"), "end_time")
    if start is not None and end is not None and start >= end:
        raise errors.InvalidArgument.field("end_time", "must be after start_time")
    return SearchRequest(
        text,
        frozenset(kinds) if kinds else frozenset(SearchKind),
        collections,
        validation.owner_filter(request.owner),
        start,
        end,
    )


def hit_to_proto(hit: SearchHit) -> search_pb2.SearchResult:
    """A merged hit as the wire message, its target by kind."""
    message = search_pb2.SearchResult(
        kind=search_pb2.SearchKind.ValueType(int(hit.kind)),
        score=hit.score,
        snippet=hit.snippet,
        owner=hit.owner,
    )
    first, second = hit.target
    if hit.kind is SearchKind.RECORD:
        message.record.collection, message.record.id = first, str(second)
    elif hit.kind is SearchKind.TRANSCRIPT_ENTRY:
        message.entry.transcript_id, message.entry.seq = first, int(second)
    else:
        message.artifact.id, message.artifact.name = first, str(second)
    set_timestamp(message.time, hit.time)
    return message


@rpcs(search_pb2.DESCRIPTOR.services_by_name["SearchService"])
@frozen
class SearchService(search_pb2_grpc.SearchServiceServicer):
    """gRPC face of the search across kinds."""

    searches: Searches
    _: KW_ONLY
    tokens: PageTokens

    async def Search(
        self, request: search_pb2.SearchRequest, context: Context
    ) -> search_pb2.SearchResponse:
        namespace = validation.namespace(request.namespace)
        checked = search_request(request)
        pages = paging(
            self.tokens, request, namespace, *checked.digest_parts(), default=DEFAULT_SEARCH_PAGE
        )
        offset = pages.offset()
        page = await self.searches.search(namespace, checked, pages.limit, offset)
        return search_pb2.SearchResponse(
            hits=[hit_to_proto(hit) for hit in page.items],
            next_page_token=pages.next_offset(page, offset),
        )
