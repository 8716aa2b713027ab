"""Queues: every queue with its counts by state, a queue's jobs by state, a job's
detail, and the actions (retry, cancel, pause, resume).

The list of queues is the API's own (ListQueues): every queue of the namespace
that holds jobs or is paused, a page at a time, for any role that may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata import AsyncClient
from strata._admin_requests import list_audit_entries
from strata._queue_requests import list_jobs, list_queues
from strata.jobs import JOB_STATES
from strata_server.console.charts import Chart
from strata_server.console.formats import quote
from strata_server.console.gateway import page_of
from strata_server.console.view import View, back_to, no_store, open_view, posted, render

QUEUES_PAGE = 50
"""Queues listed per page."""
THROUGHPUT_PAGES = 5
"""Audit pages (of 1,000 acks) read for the throughput chart, at most."""
STATES = list(JOB_STATES)


async def throughput(view: View) -> Chart | None:
    """Jobs acked in the namespace per 5 minutes over the last hour (admins only)."""
    if not view.can("admin"):
        return None
    now = datetime.now(UTC)
    since = now - timedelta(hours=1)
    buckets = [0] * 12
    token = ""
    for _ in range(THROUGHPUT_PAGES):
        paged = list_audit_entries(entity="job", action="ack", since=since, page_size=1000)
        page = await page_of(view.client, paged, token)
        for entry in page.items:
            age = now - entry.time.ToDatetime(tzinfo=UTC)
            buckets[min(11, max(0, int(age / timedelta(minutes=5))))] += 1
        token = page.next_page_token
        if not token:
            break
    labels = [f"{5 * (index + 1)}-{5 * index} min ago" for index in range(12)]
    return Chart("Jobs acked per 5 minutes (all queues)", list(zip(labels, buckets, strict=True)))


async def queues(request: Request) -> Response:
    """Every queue of the namespace with its counts, a page at a time."""
    wanted = request.query_params.get("queue", "").strip()
    if wanted:
        return back_to(f"/queues/{quote(wanted)}")
    async with open_view(request) as view:
        page = await page_of(
            view.client,
            list_queues(page_size=QUEUES_PAGE),
            request.query_params.get("page", ""),
        )
        chart = await throughput(view)
        return no_store(
            render(
                view,
                request,
                "queues.html",
                stats=page.items,
                next_page=page.next_page_token,
                chart=chart,
            )
        )


async def queue(request: Request) -> Response:
    """One queue: its counts, and its jobs in one state, a page at a time."""
    name = request.path_params["queue"]
    state = request.query_params.get("state") or None
    if state not in (None, *STATES):
        state = None
    async with open_view(request) as view:
        stats = await view.client.queue_stats(name)
        page = await page_of(
            view.client,
            list_jobs(name, state, page_size=50),
            request.query_params.get("page", ""),
        )
        response = render(
            view,
            request,
            "queue.html",
            stats=stats,
            state=state,
            states=STATES,
            jobs=page.items,
            next_page=page.next_page_token,
        )
        return no_store(response)


async def job(request: Request) -> Response:
    """One job: payload, attempts, last error, result."""
    async with open_view(request) as view:
        found = await view.client.get_job(request.path_params["id"])
        history = await _history(view, found.id)
        return no_store(render(view, request, "job.html", job=found, history=history))


async def _history(view: View, id: str) -> list[Any]:
    if not view.can("admin"):
        return []
    page = await page_of(view.client, list_audit_entries(entity="job", entity_id=id), "")
    return page.items


Action = tuple[Callable[[AsyncClient, str], Awaitable[object]], str]
"""What a button does: the client call on its target, and its past tense."""

_JOB_ACTIONS: dict[str, Action] = {
    "retry": (lambda client, id: client.retry_job(id), "retried"),
    "cancel": (lambda client, id: client.cancel_job(id), "cancelled"),
}
_QUEUE_ACTIONS: dict[str, Action] = {
    "pause": (lambda client, name: client.pause_queue(name), "paused"),
    "resume": (lambda client, name: client.resume_queue(name), "resumed"),
}


async def _act(request: Request, actions: dict[str, Action], target: str) -> str:
    """Do the action the path names to `target` (the API refuses what the token may
    not do); its past tense. An action not in `actions` is 404."""
    await posted(request)
    found = actions.get(request.path_params["action"])
    if found is None:
        raise HTTPException(404)
    call, done = found
    async with open_view(request) as view:
        await call(view.client, target)
    return done


async def job_action(request: Request) -> Response:
    """Retry or cancel a job."""
    name, id = request.path_params["queue"], request.path_params["id"]
    done = await _act(request, _JOB_ACTIONS, id)
    return back_to(f"/queues/{quote(name)}/jobs/{quote(id)}", done=f"job {id} {done}")


async def queue_action(request: Request) -> Response:
    """Pause or resume a queue."""
    name = request.path_params["queue"]
    done = await _act(request, _QUEUE_ACTIONS, name)
    return back_to(f"/queues/{quote(name)}", done=f"queue {name} {done}")


ROUTES: list[BaseRoute] = [
    Route("/queues", queues),
    Route("/queues/{queue}", queue),
    Route("/queues/{queue}/{action}", queue_action, methods=["POST"]),
    Route("/queues/{queue}/jobs/{id}", job),
    Route("/queues/{queue}/jobs/{id}/{action}", job_action, methods=["POST"]),
]
