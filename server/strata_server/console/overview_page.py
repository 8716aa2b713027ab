"""The Overview: the server, its shape, the health of its backends and what the
namespace (and, for admins of every namespace, the whole server) stores.

Health is what the API shows a caller: the database answers a usage query or is
UNAVAILABLE; the record cache reports itself unavailable while Redis is down;
the blob store answers for the oldest artifact's blob (FindMissingBlobs reads
its metadata there) or is UNAVAILABLE. A backend that is down gets a banner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from strata import PermissionDenied, StrataError, Unavailable
from strata._artifact_requests import list_artifacts
from strata._transcript_requests import list_transcripts
from strata.v1 import admin_pb2, queue_pb2
from strata_server.console.charts import Chart
from strata_server.console.gateway import Failure, page_of
from strata_server.console.view import View, no_store, open_view, render

OWNERS_SHOWN = 8
"""Owners whose usage the overview breaks down (the most recent ones)."""


@dataclass(frozen=True, slots=True)
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
        info, info_failure = await _guard(view.client.server_info())
        usage, usage_failure = await _guard(view.client.usage())
        if _unreached(info_failure) or _unreached(usage_failure):
            return no_store(_unreachable(view, request))
        everything = None
        if view.can("admin"):
            everything, _ = await _guard(view.client.usage(all_namespaces=True))
        health = [
            Health("API", "up" if view.reachable else "down"),
            _database(info, usage_failure),
            _cache(info),
            await _blobs(view, info),
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
    health = [Health("API", "down", failure.message)]
    return render(
        view,
        request,
        "overview.html",
        info=None,
        info_failure=failure,
        usage=None,
        usage_failure=None,
        everything=None,
        health=health,
        down=health,
        owners=[],
        charts=[],
        all_charts=[],
    )


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
    name = f"Database ({info.database_backend})" if info else "Database"
    if failure is not None and failure.status == "UNAVAILABLE":
        return Health(name, "down", failure.message)
    if failure is not None:
        return Health(name, "unknown", f"{failure.status}: {failure.message}")
    return Health(name, "up")


def _cache(info: admin_pb2.GetServerInfoResponse | None) -> Health:
    if info is None:
        return Health("Cache", "unknown", "needs an admin token")
    name = f"Cache ({info.cache_backend})"
    if info.cache_backend == "none":
        return Health(name, "up", "no shared cache configured")
    if not info.cache_stats.available:
        return Health(name, "down", "record reads go to the database until it is back")
    return Health(name, "up")


async def _blobs(view: View, info: admin_pb2.GetServerInfoResponse | None) -> Health:
    name = f"Blob store ({info.blob_backend})" if info else "Blob store"
    try:
        first = await page_of(view.client, list_artifacts(page_size=1), "")
        if not first.items:
            return Health(name, "unknown", "no artifact in this namespace to probe")
        missing = await view.client.find_missing_blobs([first.items[0].sha256])
    except Unavailable as error:
        return Health(name, "down", error.message)
    except StrataError as error:
        return Health(name, "unknown", f"{error.code.name}: {error.message}")
    if missing:
        return Health(name, "down", "the blob of the oldest artifact is missing")
    return Health(name, "up")


async def _owner_usage(view: View) -> list[tuple[str, admin_pb2.NamespaceUsage]]:
    """Usage of the owners of the newest transcripts (and of the first artifacts)."""
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
