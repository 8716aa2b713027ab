"""Records: the collections, a collection's records with an AIP-160 filter and an
order (a bad filter shows the API's error at its position), paging, a record's
JSON and its version history from the audit log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata import PermissionDenied, Record
from strata._admin_requests import list_audit_entries
from strata._record_requests import list_records
from strata._rpc import Page
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
    order_by = field(request.query_params, "order_by")
    token = request.query_params.get("page", "")
    async with open_view(request) as view:

        async def matching() -> tuple[Page[Record], int]:
            paged = list_records(collection, filter=filter, order_by=order_by, page_size=PAGE_SIZE)
            page = await page_of(view.client, paged, token)
            return page, await view.client.count_records(collection, filter)

        found, failure = await refused(matching())
        page, count = found or (None, None)
        return form_page(
            view,
            request,
            "records.html",
            failure,
            collection=collection,
            filter=filter,
            order_by=order_by,
            records=page.items if page else [],
            count=count,
            next_page=page.next_page_token if page else "",
            position=_position(failure),
            bad_field=failure.violations[0][0] if failure and failure.violations else "",
        )


def _position(failure: Failure | None) -> int | None:
    """Where in the filter (or order) the API found the first bad token."""
    if failure is None:
        return None
    try:
        return int(failure.metadata.get("position", ""))
    except ValueError:
        return None


async def record(request: Request) -> Response:
    """One record: its data as JSON, and its history (admins: the audit log)."""
    collection, id = request.path_params["collection"], request.path_params["id"]
    async with open_view(request) as view:
        found = await view.client.get_record(collection, id)
        history = []
        if view.can("admin"):
            paged = list_audit_entries(entity="record", entity_id=f"{collection}/{id}")
            history = (await page_of(view.client, paged, "")).items
        return no_store(render(view, request, "record.html", record=found, history=history))


async def delete(request: Request) -> Response:
    """Delete a record at the version the page showed: if it changed since, the
    API refuses with VERSION_CONFLICT and its current version, shown as such."""
    form = await posted(request)
    collection, id = request.path_params["collection"], request.path_params["id"]
    version = number(field(form, "version"), 0)
    async with open_view(request) as view:
        await view.client.delete_record(collection, id, expected_version=version)
    return back_to(f"/records/{quote(collection)}", done=f"record {id} deleted")


ROUTES: list[BaseRoute] = [
    Route("/records", collections),
    Route("/records/{collection}", records),
    Route("/records/{collection}/{id}", record),
    Route("/records/{collection}/{id}/delete", delete, methods=["POST"]),
]
