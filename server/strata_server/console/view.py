"""Who is looking, at which namespace, and how a page is drawn for them.

The bearer token lives only in an HttpOnly, SameSite=Strict cookie: page scripts
cannot read it and another site cannot make the browser send it. Every POST
also has to come from the console's own pages (`posted` checks Origin/Referer),
which matters under `--auth none`, where there is no token to withhold.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from strata import AsyncClient, InvalidArgument, Unavailable
from strata_server.console import formats
from strata_server.console.gateway import Failure, Role, Roles, Upstream, at_least
from strata_server.console.runs import Runs
from strata_server.core.values import frozen

T = TypeVar("T")

TOKEN_COOKIE = "strata_token"
NAMESPACE_COOKIE = "strata_namespace"
DEFAULT_NAMESPACE = "default"

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
formats.install(TEMPLATES.env)


@dataclass(slots=True)
class View:
    """One page request: the caller's client and what the API lets them do."""

    request: Request
    client: AsyncClient
    token: str | None
    namespace: str
    role: Role
    reachable: bool = True
    """False when the API could not be reached to learn the role."""
    outage: Failure | None = None
    """The API's UNAVAILABLE when it was asked the role: its database is down."""

    def can(self, needed: Role) -> bool:
        """Whether to show controls that need `needed` (the API decides anyway)."""
        return at_least(self.role, needed)


@frozen
class Console:
    """What every page of one console shares."""

    upstream: Upstream
    roles: Roles
    runs: Runs


def console_of(request: Request) -> Console:
    """The console this request reached."""
    console: Console = request.app.state.console
    return console


@contextlib.asynccontextmanager
async def open_view(request: Request) -> AsyncIterator[View]:
    """The view of this request, its client closed at the end. Raises
    Unauthenticated (the handler sends the browser to sign in) when token auth
    is on and the cookie holds no valid token."""
    console = console_of(request)
    token = request.cookies.get(TOKEN_COOKIE) or None
    namespace = request.cookies.get(NAMESPACE_COOKIE) or DEFAULT_NAMESPACE
    client = console.upstream.client(token, namespace)
    try:
        reachable, outage = True, None
        try:
            role = await console.roles.of(client, token, namespace)
        except Unavailable as error:
            # The pages say what is down; show no write control meanwhile. The
            # server's own UNAVAILABLE (a backend of its own is down) carries a
            # reason; the client's (the API cannot be reached) has none.
            role = "reader"
            if error.reason:
                outage = Failure.of(error)
            else:
                reachable = False
        yield View(request, client, token, namespace, role, reachable, outage)
    finally:
        await client.close()


def render(
    view: View | None,
    request: Request,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or, for htmx, a fragment) drawn from `template`."""
    page = {"view": view, "request": request, **context}
    return TEMPLATES.TemplateResponse(request, template, page, status_code=status)


async def refused(call: Awaitable[T]) -> tuple[T | None, Failure | None]:
    """The call's result, or the API's refusal of what a form asked for
    (INVALID_ARGUMENT: a bad filter, order or time), which the page shows beside
    the form rather than instead of it."""
    try:
        return await call, None
    except InvalidArgument as error:
        return None, Failure.of(error)


def form_page(
    view: View, request: Request, template: str, failure: Failure | None, **context: Any
) -> Response:
    """A page of a form's results, or of the form with the API's refusal (400)."""
    status = 400 if failure else 200
    return no_store(render(view, request, template, status, failure=failure, **context))


def failed(view: View | None, request: Request, failure: Failure) -> HTMLResponse:
    """The page of a failed call: status, reason and message."""
    return render(view, request, "error.html", failure.http_status, failure=failure)


async def posted(request: Request) -> FormData:
    """The form of a POST sent from the console's own pages; a post another site
    made the browser send (cross-origin) is refused before anything is called."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin:
        parts = urlsplit(origin)
        if parts.netloc != request.url.netloc:
            raise HTTPException(403, "cross-site request refused")
    return await request.form()


def field(form: FormData | Mapping[str, Any], name: str) -> str:
    """A text field of a form or query, stripped; empty when absent."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def number(value: str | None, default: int) -> int:
    """An integer from a query or form; 400 (not a traceback) when it is not one."""
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise HTTPException(400, f"{value!r} is not a number") from None


def back_to(path: str, **params: str) -> RedirectResponse:
    """After a successful POST: see the page again (and not re-send on reload)."""
    query = "&".join(f"{key}={formats.quote(value)}" for key, value in params.items() if value)
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)


def local_path(value: str) -> str:
    """`value` when it is a path of this console, else "/": sign-in never sends
    the browser to another site."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def no_store(response: Response) -> Response:
    """Pages show data only their viewer may see: keep them out of caches."""
    response.headers["cache-control"] = "no-store"
    return response
