"""Operations: retention policies, cleanup (a dry run first) and the scheduled
cleanup's last pass, integrity checks and the namespace's last result, index
builds, the audit log, and the page of each long run with its live progress.
Export and import are in `transfer_pages`.

Long calls run as console runs (`runs`): the page that starts one is sent to
the run's page, which draws the API's Progress messages as server-sent events.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from strata import InvalidArgument, PermissionDenied
from strata._admin_requests import RETENTION_TARGETS, RetentionTarget, list_audit_entries
from strata._rpc import Page
from strata.v1 import admin_pb2
from strata_server.console import transfer_pages
from strata_server.console.gateway import page_of
from strata_server.console.runs import Run
from strata_server.console.view import (
    TEMPLATES,
    TOKEN_COOKIE,
    View,
    back_to,
    console_of,
    field,
    form_page,
    no_store,
    open_view,
    posted,
    refused,
    render,
)

TARGETS: dict[int, RetentionTarget] = {
    number: cast(RetentionTarget, name) for name, number in RETENTION_TARGETS.items()
}
AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """ "30d", "12h", "90m", "45s" or seconds; InvalidArgument otherwise."""
    match = AGE.match(text)
    if match is None:
        raise InvalidArgument(
            f"max age {text!r}: write a number and a unit, e.g. 30d, 12h or 90m",
            violations=[("max_age", "e.g. 30d, 12h or 90m")],
        )
    return timedelta(seconds=float(match[1]) * AGE_UNITS[match[2]])


async def operations(request: Request) -> Response:
    """The operations page: policies, indexes, the last cleanup pass and integrity
    result, and forms to start the long runs."""
    async with open_view(request) as view:
        policies, indexes = [], []
        cleanup_status = integrity_status = None
        if view.can("admin"):  # every call here is an admin's
            policies = await view.client.list_retention_policies()
            indexes = await view.client.list_indexes()
            integrity_status = await view.client.get_integrity_status()
            # The scheduled passes cover every namespace: an admin of "*" sees them.
            with contextlib.suppress(PermissionDenied):
                cleanup_status = await view.client.cleanup_status()
        runs = console_of(request).runs.mine(view.token)
        return no_store(
            render(
                view,
                request,
                "operations.html",
                policies=policies,
                targets=TARGETS,
                indexes=indexes,
                runs=runs,
                cleanup_status=cleanup_status,
                integrity_status=integrity_status,
            )
        )


async def set_policy(request: Request) -> Response:
    """Set (create or replace) a retention policy."""
    form = await posted(request)
    target = field(form, "target")
    if target not in TARGETS.values():
        raise HTTPException(400, "unknown retention target")
    async with open_view(request) as view:
        await view.client.set_retention_policy(
            target,  # type: ignore[arg-type]
            parse_age(field(form, "max_age")),
            field(form, "selector"),
        )
    return back_to("/operations", done=f"retention policy for {target} set")


async def delete_policy(request: Request) -> Response:
    """Remove a retention policy."""
    form = await posted(request)
    target = field(form, "target")
    async with open_view(request) as view:
        await view.client.delete_retention_policy(target, field(form, "selector"))  # type: ignore[arg-type]
    return back_to("/operations", done=f"retention policy for {target} removed")


def _start(request: Request, view: View, kind: str, title: str, work: Any) -> Response:
    run = console_of(request).runs.start(kind, title, view.token, view.namespace, work)
    return back_to(f"/operations/runs/{run.id}")


async def cleanup(request: Request) -> Response:
    """Start a cleanup of the namespace, or its dry run."""
    form = await posted(request)
    dry = field(form, "dry_run") == "1"
    async with open_view(request) as view:
        upstream, token, namespace = console_of(request).upstream, view.token, view.namespace

        async def work(run: Run) -> Any:
            async with upstream.client(token, namespace) as client:
                return await client.run_cleanup(dry_run=dry, progress=run.report)

        title = "Cleanup (dry run)" if dry else "Cleanup"
        return _start(request, view, "cleanup", title, work)


async def integrity(request: Request) -> Response:
    """Start an integrity check (with blob verification or repair if asked)."""
    form = await posted(request)
    verify, repair = field(form, "verify_blobs") == "1", field(form, "repair") == "1"
    async with open_view(request) as view:
        upstream, token, namespace = console_of(request).upstream, view.token, view.namespace

        async def work(run: Run) -> Any:
            async with upstream.client(token, namespace) as client:
                return await client.check_integrity(
                    repair=repair, verify_blobs=verify, progress=run.report
                )

        title = "Integrity check" + (" and repair" if repair else "")
        return _start(request, view, "integrity", title, work)


async def create_index(request: Request) -> Response:
    """Start building an index on a collection's field."""
    form = await posted(request)
    collection, indexed = field(form, "collection"), field(form, "field")
    async with open_view(request) as view:
        upstream, token, namespace = console_of(request).upstream, view.token, view.namespace

        async def work(run: Run) -> Any:
            async with upstream.client(token, namespace) as client:
                return await client.create_index(collection, indexed, progress=run.report)

        return _start(request, view, "index", f"Index on {collection}.{indexed}", work)


async def drop_index(request: Request) -> Response:
    """Remove a declared index."""
    form = await posted(request)
    collection, indexed = field(form, "collection"), field(form, "field")
    async with open_view(request) as view:
        await view.client.drop_index(collection, indexed)
    return back_to("/operations", done=f"index on {collection}.{indexed} dropped")


async def run_page(request: Request) -> Response:
    """A run: its progress, live, then its result."""
    async with open_view(request) as view:
        run = _run_of(request)
        return no_store(render(view, request, "run.html", run=run))


def _run_of(request: Request) -> Run:
    run = console_of(request).runs.get(
        request.path_params["id"], request.cookies.get(TOKEN_COOKIE) or None
    )
    if run is None:
        raise HTTPException(404, "no such run (runs are kept by the console that started them)")
    return run


async def run_events(request: Request) -> Response:
    """Server-sent events of a run: `progress` as it changes, then `done` (the
    result's HTML, after which the browser closes the stream)."""
    run = _run_of(request)
    progress = TEMPLATES.get_template("run_progress.html")
    result = TEMPLATES.get_template("run_result.html")

    async def events() -> AsyncIterator[ServerSentEvent]:
        seen = -1
        while True:
            if run.version != seen:
                seen = run.version
                yield ServerSentEvent(progress.render(run=run), event="progress")
            if run.finished:
                yield ServerSentEvent(result.render(run=run, failure=run.failure), event="done")
                return
            await run.changes()

    return EventSourceResponse(events(), ping=10, headers={"cache-control": "no-store"})


async def run_archive(request: Request) -> Response:
    """The archive an export run wrote."""
    run = _run_of(request)
    if run.kind != "export" or not run.finished or run.failure or not run.archive.exists():
        raise HTTPException(404, "this run has no archive")
    name = f"strata-{run.namespace}-{run.id}.tar"
    return FileResponse(run.archive, media_type="application/x-tar", filename=name)


async def audit(request: Request) -> Response:
    """The audit log, newest first, with its filters."""
    params = request.query_params
    filters = {name: field(params, name) for name in ("entity", "entity_id", "actor", "action")}
    since, until = field(params, "since"), field(params, "until")
    async with open_view(request) as view:

        async def listed() -> Page[admin_pb2.AuditEntry]:
            paged = list_audit_entries(
                **filters, since=_time(since, "since"), until=_time(until, "until"), page_size=50
            )
            return await page_of(view.client, paged, params.get("page", ""))

        page, failure = await refused(listed())
        return form_page(
            view,
            request,
            "audit.html",
            failure,
            filters=filters,
            since=since,
            until=until,
            entries=page.items if page else [],
            next_page=page.next_page_token if page else "",
            query=urlencode([(k, v) for k, v in params.items() if k != "page" and v]),
        )


def _time(text: str, name: str) -> datetime | None:
    """A time from a form (ISO 8601; without a zone, UTC)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{name}: {html.escape(text)!r} is not a time (e.g. 2025-01-31T12:00)",
            violations=[(name, "not an ISO 8601 time")],
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


ROUTES: list[BaseRoute] = [
    Route("/operations", operations),
    Route("/operations/retention", set_policy, methods=["POST"]),
    Route("/operations/retention/delete", delete_policy, methods=["POST"]),
    Route("/operations/cleanup", cleanup, methods=["POST"]),
    Route("/operations/integrity", integrity, methods=["POST"]),
    Route("/operations/indexes", create_index, methods=["POST"]),
    Route("/operations/indexes/drop", drop_index, methods=["POST"]),
    Route("/operations/audit", audit),
    Route("/operations/runs/{id}", run_page),
    Route("/operations/runs/{id}/events", run_events),
    Route("/operations/runs/{id}/archive", run_archive),
    *transfer_pages.ROUTES,
]
