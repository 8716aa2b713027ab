"""Records: the collections, a collection's records with an AIP-160 filter, an
owner and an order (a bad filter shows the API's error at its position), paging,
a record's JSON, its children (the transcripts and artifacts naming it as their
parent) and its version history from the audit log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata import PermissionDenied, Record
from strata._admin_requests import list_audit_entries
from strata._artifact_requests import list_artifacts
from strata._record_requests import list_records
from strata._rpc import Page
from strata._transcript_requests import list_transcripts
from strata.v1 import admin_pb2
from strata_server.console.charts import Chart
from strata_server.console.formats import quote
from strata_server.console.gateway import Failure, page_of
from strata_server.console.view import (
    back_to,
    field,
    form_page,
    no_store,
    number,
    open_view,
    posted,
    refused,
    render,
)

PAGE_SIZE = 25
CHILDREN_SHOWN = 50
"""Children of each kind a record's page lists (the rest: the lists by parent)."""


async def collections(request: Request) -> Response:
    """The namespace's collections with their sizes (admins: from GetUsage)."""
    wanted = field(request.query_params, "collection")
    if wanted:
        return back_to(f"/records/{quote(wanted)}")
    async with open_view(request) as view:
        found: list[admin_pb2.CollectionUsage] = []
        if view.can("admin"):
            try:
                usage = await view.client.usage()
                found = list(usage.namespaces[0].collections) if usage.namespaces else []
            except PermissionDenied:
                pass
        chart = Chart("Records per collection", [(c.collection, c.record_count) for c in found])
        return no_store(render(view, request, "collections.html", collections=found, chart=chart))


async def records(request: Request) -> Response:
    """One collection's records: filter, order, a page at a time."""
    collection = request.path_params["collection"]
    filter = field(request.query_params, "filter")
    owner = field(request.query_params, "owner")
    order_by = field(request.query_params, "order_by")
    token = request.query_params.get("page", "")
    sent, shift = owned(owner, filter)
    async with open_view(request) as view:

        async def matching() -> tuple[Page[Record], int]:
            paged = list_records(collection, filter=sent, order_by=order_by, page_size=PAGE_SIZE)
            page = await page_of(view.client, paged, token)
            return page, await view.client.count_records(collection, sent)

        found, failure = await refused(matching())
        page, count = found or (None, None)
        return form_page(
            view,
            request,
            "records.html",
            failure,
            collection=collection,
            filter=filter,
            owner=owner,
            order_by=order_by,
            records=page.items if page else [],
            count=count,
            next_page=page.next_page_token if page else "",
            position=_position(failure, shift),
            bad_field=failure.violations[0][0] if failure and failure.violations else "",
        )


def owned(owner: str, filter: str) -> tuple[str, int]:
    """The filter the API gets for an owner and the page's filter (AIP-160 has the
    `owner` field; the page asks for it apart so an operator need not quote it),
    and how far the page's filter is shifted within it."""
    if not owner:
        return filter, 0
    literal = owner.replace("\\", "\\\\").replace('"', '\\"')
    condition = f'owner = "{literal}"'
    if not filter:
        return condition, len(condition)
    prefix = f"{condition} AND ("
    return f"{prefix}{filter})", len(prefix)


def _position(failure: Failure | None, shift: int = 0) -> int | None:
    """Where in the page's filter (or order) the API found the first bad token;
    None when it is not there (in the owner's condition)."""
    if failure is None:
        return None
    try:
        position = int(failure.metadata.get("position", ""))
    except ValueError:
        return None
    bad_filter = bool(failure.violations) and failure.violations[0][0] == "filter"
    if bad_filter and shift:
        position -= shift
    return position if position >= 0 else None


async def record(request: Request) -> Response:
    """One record: its data as JSON, its children, and its history (admins: the
    audit log)."""
    collection, id = request.path_params["collection"], request.path_params["id"]
    async with open_view(request) as view:
        found = await view.client.get_record(collection, id)
        parent = (collection, id)
        transcripts = await page_of(
            view.client, list_transcripts(parent=parent, page_size=CHILDREN_SHOWN), ""
        )
        artifacts = await page_of(
            view.client, list_artifacts(parent=parent, page_size=CHILDREN_SHOWN), ""
        )
        history = []
        if view.can("admin"):
            paged = list_audit_entries(entity="record", entity_id=f"{collection}/{id}")
            history = (await page_of(view.client, paged, "")).items
        return no_store(
            render(
                view,
                request,
                "record.html",
                record=found,
                history=history,
                transcripts=transcripts,
                artifacts=artifacts,
            )
        )


async def delete(request: Request) -> Response:
    """Delete a record at the version the page showed: if it changed since, the
    API refuses with VERSION_CONFLICT and its current version, shown as such. A
    record with children goes only with `cascade` (and them with it); otherwise
    the API refuses with HAS_CHILDREN."""
    form = await posted(request)
    collection, id = request.path_params["collection"], request.path_params["id"]
    version = number(field(form, "version"), 0)
    cascade = field(form, "cascade") == "1"
    async with open_view(request) as view:
        await view.client.delete_record(collection, id, expected_version=version, cascade=cascade)
    return back_to(f"/records/{quote(collection)}", done=f"record {id} deleted")


ROUTES: list[BaseRoute] = [
    Route("/records", collections),
    Route("/records/{collection}", records),
    Route("/records/{collection}/{id}", record),
    Route("/records/{collection}/{id}/delete", delete, methods=["POST"]),
]
