"""The Overview: the server, its shape, the health of its backends and what the
namespace (and, for admins of every namespace, the whole server) stores.

Health is what the API shows a caller: the database answers a usage query or is
UNAVAILABLE; the record cache reports itself unavailable while Redis is down;
the blob store answers for an artifact's blob (FindMissingBlobs reads its
metadata there) or is UNAVAILABLE. A backend that is down gets a banner.

The API reaches the blob store only through a blob an artifact names (no call
probes the store itself, and FindMissingBlobs of a digest no artifact names
answers from the database alone), so the probe takes the namespace's oldest
artifact or, for a token of every namespace, the oldest of the first namespace
that holds one. With no artifact on the server, the blob store holds nothing
Strata relies on yet, and its state is "unknown".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from strata import AsyncClient, PermissionDenied, StrataError, Unavailable
from strata._artifact_requests import list_artifacts
from strata._transcript_requests import list_transcripts
from strata.v1 import admin_pb2, queue_pb2
from strata_server.console.charts import Chart
from strata_server.console.gateway import Failure, page_of
from strata_server.console.view import View, console_of, no_store, open_view, render
from strata_server.core.values import frozen

OWNERS_SHOWN = 8
"""Owners whose usage the overview breaks down. GetUsage tells one owner's usage
per call and no call lists the owners, so these are the owners of the newest
transcripts, then of the first (oldest) artifacts: not a ranking by size."""


@frozen
class Health:
    """One backend as the API shows it."""

    name: str
    state: str
    """"up", "down" or "unknown"."""
    detail: str = ""


async def overview(request: Request) -> Response:
    """The Overview page."""
    async with open_view(request) as view:
        if not view.reachable:  # every call would fail the same way: say so at once
            return no_store(_unreachable(view, request))
        if view.outage is not None:  # the role probe found the database down
            return no_store(_database_down(view, request, view.outage, None, view.outage))
        (info, info_failure), (usage, usage_failure) = await asyncio.gather(
            _guard(view.client.server_info()), _guard(view.client.usage())
        )
        if _unreached(info_failure) or _unreached(usage_failure):
            return no_store(_unreachable(view, request))
        if usage_failure is not None and usage_failure.status == "UNAVAILABLE":
            # Each call below needs the database too, and would wait for it in turn.
            return no_store(_database_down(view, request, usage_failure, info, info_failure))
        everything = None
        if view.can("admin"):
            everything, _ = await _guard(view.client.usage(all_namespaces=True))
        health = [
            Health("API", "up"),
            _database(info, usage_failure),
            _cache(info, info_failure),
            await _blobs(view, info, everything),
        ]
        owners = await _owner_usage(view) if usage is not None else []
        mine = usage.namespaces[0] if usage is not None and usage.namespaces else None
        return no_store(
            render(
                view,
                request,
                "overview.html",
                info=info,
                info_failure=info_failure,
                usage=mine,
                charts=namespace_charts(mine) if mine is not None else [],
                all_charts=server_charts(everything) if everything is not None else [],
                usage_failure=usage_failure,
                everything=everything,
                health=health,
                down=[item for item in health if item.state == "down"],
                owners=owners,
                owners_shown=OWNERS_SHOWN,
            )
        )


def _unreached(failure: Failure | None) -> bool:
    """Whether the call never reached the API: UNAVAILABLE from the client's
    transport, without the ErrorInfo the server puts on every error (a backend
    the server cannot reach is UNAVAILABLE with reason BACKEND_UNAVAILABLE)."""
    return failure is not None and failure.status == "UNAVAILABLE" and not failure.reason


def _unreachable(view: View, request: Request) -> Response:
    failure = Failure(
        "UNAVAILABLE", "", f"the API at {view.client.config.target} cannot be reached"
    )
    return _outage(view, request, [Health("API", "down", failure.message)], info_failure=failure)


def _database_down(
    view: View,
    request: Request,
    failure: Failure,
    info: admin_pb2.GetServerInfoResponse | None,
    info_failure: Failure | None,
) -> Response:
    """The overview while the API answers that its database is down: what can be
    known without the database (artifacts too are found through it)."""
    health = [
        Health("API", "up"),
        Health(_named("Database", info and info.database_backend), "down", failure.message),
        _cache(info, info_failure),
        Health(_named("Blob store", info and info.blob_backend), "unknown", "needs the database"),
    ]
    return _outage(
        view, request, health, info=info, info_failure=info_failure, usage_failure=failure
    )


def _outage(
    view: View,
    request: Request,
    health: list[Health],
    *,
    info: admin_pb2.GetServerInfoResponse | None = None,
    info_failure: Failure | None = None,
    usage_failure: Failure | None = None,
) -> Response:
    """The overview when what it shows cannot be fetched: the health, its banners
    and why."""
    return render(
        view,
        request,
        "overview.html",
        info=info,
        info_failure=info_failure,
        usage=None,
        usage_failure=usage_failure,
        everything=None,
        health=health,
        down=[item for item in health if item.state == "down"],
        owners=[],
        charts=[],
        all_charts=[],
    )


def _named(backend: str, kind: str | None) -> str:
    """ "Database (postgres)", or "Database" when the server did not say."""
    return f"{backend} ({kind})" if kind else backend


STATE_NAMES = {
    value: name.removeprefix("JOB_STATE_").lower() for name, value in queue_pb2.JobState.items()
}


def namespace_charts(usage: admin_pb2.NamespaceUsage) -> list[Chart]:
    """The bar charts of one namespace's usage."""
    return [
        Chart(
            "Records per collection", [(c.collection, c.record_count) for c in usage.collections]
        ),
        Chart("Jobs per state", [(STATE_NAMES.get(j.state, "?"), j.count) for j in usage.jobs]),
        Chart(
            "Transcripts and entries",
            [("transcripts", usage.transcript_count), ("entries", usage.entry_count)],
        ),
        Chart(
            "Transcript bytes per tier",
            [
                ("hot", usage.transcript_tiers.hot_bytes),
                ("archived", usage.transcript_tiers.archived_bytes),
            ],
            "bytes",
        ),
        Chart(
            "Artifact bytes per kind",
            [(kind.kind, kind.artifact_bytes) for kind in usage.artifact_kinds],
            "bytes",
        ),
        blob_chart("Artifacts: logical vs stored", usage.blobs, unique=True),
    ]


def server_charts(usage: admin_pb2.GetUsageResponse) -> list[Chart]:
    """The bar charts of every namespace, side by side."""
    spaces = list(usage.namespaces)
    return [
        Chart("Records per namespace", [(u.namespace, u.record_count) for u in spaces]),
        Chart("Jobs per namespace", [(u.namespace, u.job_count) for u in spaces]),
        Chart("Entries per namespace", [(u.namespace, u.entry_count) for u in spaces]),
        Chart(
            "Artifact bytes per namespace",
            [(u.namespace, u.artifact_bytes) for u in spaces],
            "bytes",
        ),
        blob_chart("All blobs", usage.total.blobs, unique=False),
    ]


def blob_chart(title: str, blobs: admin_pb2.BlobUsage, *, unique: bool) -> Chart:
    """What artifacts refer to against what the blob store holds (and, with
    `unique`, the bytes of distinct content between the two)."""
    bars = [("logical", blobs.referenced_bytes)]
    if unique:
        bars.append(("unique", blobs.unique_bytes))
    bars += [("stored", blobs.stored_bytes), ("dedup saved", blobs.dedup_saved_bytes)]
    return Chart(title, bars, "bytes")


async def _guard(call: Any) -> tuple[Any, Failure | None]:
    """A call's result, or why it failed (the page shows the rest anyway)."""
    try:
        return await call, None
    except StrataError as error:
        return None, Failure.of(error)


def _database(info: admin_pb2.GetServerInfoResponse | None, failure: Failure | None) -> Health:
    name = _named("Database", info and info.database_backend)
    if failure is not None:
        return Health(name, "unknown", f"{failure.status}: {failure.message}")
    return Health(name, "up")


def _cache(info: admin_pb2.GetServerInfoResponse | None, failure: Failure | None) -> Health:
    if info is None:
        why = f"{failure.status}: {failure.message}" if failure else "needs an admin token"
        return Health("Cache", "unknown", why)
    name = _named("Cache", info.cache_backend)
    if info.cache_backend == "none":
        return Health(name, "up", "no shared cache configured")
    if not info.cache_stats.available:
        return Health(name, "down", "record reads go to the database until it is back")
    return Health(name, "up")


async def _blobs(
    view: View,
    info: admin_pb2.GetServerInfoResponse | None,
    everything: admin_pb2.GetUsageResponse | None,
) -> Health:
    name = _named("Blob store", info and info.blob_backend)
    holders = [view.namespace]
    if everything is not None:
        holders += [u.namespace for u in everything.namespaces if u.artifact_count]
    for namespace in dict.fromkeys(holders):
        async with _client_in(view, namespace) as client:
            try:
                first = await page_of(client, list_artifacts(page_size=1), "")
            except StrataError as error:  # the database, most likely: no blob to ask for
                return Health(name, "unknown", f"{error.code.name}: {error.message}")
            if not first.items:
                continue
            try:
                missing = await client.find_missing_blobs([first.items[0].sha256])
            except Unavailable as error:  # the database answered a moment ago
                return Health(name, "down", error.message)
            except StrataError as error:
                return Health(name, "unknown", f"{error.code.name}: {error.message}")
            if missing:
                return Health(
                    name, "down", f"the blob of the oldest artifact of {namespace} is missing"
                )
            return Health(name, "up")
    where = "this server" if everything is not None else "this namespace"
    return Health(name, "unknown", f"no artifact on {where} whose blob could be asked for")


@contextlib.asynccontextmanager
async def _client_in(view: View, namespace: str) -> AsyncIterator[AsyncClient]:
    """The view's client, or one with the same token in another namespace."""
    if namespace == view.namespace:
        yield view.client
        return
    async with console_of(view.request).upstream.client(view.token, namespace) as client:
        yield client


async def _owner_usage(view: View) -> list[tuple[str, admin_pb2.NamespaceUsage]]:
    """Usage of the owners of the newest transcripts, then of the first artifacts."""
    owners: list[str] = []
    try:
        transcripts = await page_of(view.client, list_transcripts(page_size=100), "")
        artifacts = await page_of(view.client, list_artifacts(page_size=100), "")
    except StrataError:
        return []
    for owner in [item.owner for item in transcripts.items] + [
        item.owner for item in reversed(artifacts.items)
    ]:
        if owner and owner not in owners:
            owners.append(owner)
    found = []
    for owner in owners[:OWNERS_SHOWN]:
        try:
            usage = await view.client.usage(owner=owner)
        except PermissionDenied:
            return []
        if usage.namespaces:
            found.append((owner, usage.namespaces[0]))
    return found
