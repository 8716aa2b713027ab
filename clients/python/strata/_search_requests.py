"""The search across kinds (SearchService), described without doing any I/O: the
call builder below is `Client.search` and `AsyncClient.search`. A read, so it is
always retried after UNAVAILABLE."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from strata._convert import timestamp_from_datetime
from strata._rpc import PagedRpc, paged_call
from strata.search import KINDS, SearchHit
from strata.v1 import search_pb2


def search(
    query: str,
    *,
    kinds: Iterable[str] = (),
    collections: Iterable[str] = (),
    owner: str = "",
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    page_size: int = 0,
    namespace: str | None = None,
) -> PagedRpc[SearchHit]:
    """Iterate over everything holding every word of `query` (records, transcript
    entries, artifact names and labels, text artifacts' content), best first, as
    `SearchHit`s. `kinds` narrows it (names of `strata.search.KINDS`; an unknown
    name raises ValueError), `collections` narrows the records, `owner` the entries
    and artifacts, `start_time`/`end_time` each hit's time (docs/search.md)."""
    unknown = sorted(set(kinds) - KINDS.keys())
    if unknown:
        raise ValueError(f"unknown search kinds {unknown}; use {sorted(KINDS)}")
    request = search_pb2.SearchRequest(
        query=query,
        kinds=[KINDS[kind] for kind in kinds],
        collections=list(collections),
        owner=owner,
        start_time=timestamp_from_datetime(start_time, "start_time"),
        end_time=timestamp_from_datetime(end_time, "end_time"),
        page_size=page_size,
    )
    return paged_call("Search", request, _hits, namespace, "search")


def _hits(response: search_pb2.SearchResponse) -> list[SearchHit]:
    return [SearchHit.from_proto(hit) for hit in response.hits]
