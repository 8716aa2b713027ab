"""The console's web application: routes, sign-in, and how failures are shown.

Starlette with Jinja2 templates: pages are drawn on the server, htmx swaps parts
of them and the server-sent events of live views, so there is no build step and
nothing is loaded from elsewhere (both scripts are vendored under static/).
"""

from __future__ import annotations

from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from strata import StrataError, Unauthenticated
from strata_server.console import (
    artifact_pages,
    operation_pages,
    overview_page,
    queue_pages,
    record_pages,
    search_page,
    transcript_pages,
)
from strata_server.console.gateway import Failure, Roles, Upstream
from strata_server.console.runs import Runs
from strata_server.console.view import (
    NAMESPACE_COOKIE,
    TOKEN_COOKIE,
    Console,
    back_to,
    console_of,
    failed,
    field,
    local_path,
    posted,
    render,
)

log = structlog.get_logger("strata.console")

COOKIE_SECONDS = 12 * 3600


async def sign_in(request: Request) -> Response:
    """The sign-in form, and its POST: check the token with the API, then keep it
    in an HttpOnly cookie."""
    target = local_path(request.query_params.get("next", "/"))
    if request.method == "GET":
        return render(None, request, "sign_in.html", next=target)
    form = await posted(request)
    token = field(form, "token")
    target = local_path(field(form, "next") or "/")
    console = console_of(request)
    namespace = request.cookies.get(NAMESPACE_COOKIE) or "default"
    client = console.upstream.client(token, namespace)
    try:
        await console.roles.of(client, token, namespace)
    except StrataError as error:
        return render(
            None,
            request,
            "sign_in.html",
            Failure.of(error).http_status,
            next=target,
            failure=Failure.of(error),
        )
    finally:
        await client.close()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def sign_out(request: Request) -> Response:
    """Forget the token: the cookie and what the console knew of its role."""
    await posted(request)
    console_of(request).roles.forget(request.cookies.get(TOKEN_COOKIE))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response


async def choose_namespace(request: Request) -> Response:
    """Switch the namespace every page shows."""
    form = await posted(request)
    namespace = field(form, "namespace") or "default"
    response = back_to(local_path(field(form, "next") or "/"))
    response.set_cookie(NAMESPACE_COOKIE, namespace, samesite="strict", httponly=True)
    return response


async def on_strata_error(request: Request, error: Exception) -> Response:
    """A call the page could not do without: show why, or ask to sign in."""
    assert isinstance(error, StrataError)
    if isinstance(error, Unauthenticated):
        if request.cookies.get(TOKEN_COOKIE):
            console_of(request).roles.forget(request.cookies.get(TOKEN_COOKIE))
        return RedirectResponse(f"/sign-in?next={request.url.path}", status_code=303)
    return failed(None, request, Failure.of(error))


async def on_http_error(request: Request, error: Exception) -> Response:
    """Not found, refused, bad method: the console's own errors, as a page."""
    assert isinstance(error, HTTPException)
    failure = Failure(f"HTTP {error.status_code}", "", error.detail)
    return render(None, request, "error.html", error.status_code, failure=failure)


async def on_any_error(request: Request, error: Exception) -> Response:
    """A bug of the console: logged with its traceback, shown without one."""
    log.exception("console page failed", path=request.url.path)
    failure = Failure("INTERNAL", "", "the console failed to draw this page; see the server log")
    return render(None, request, "error.html", 500, failure=failure)


def routes() -> list[BaseRoute]:
    """Every page and action of the console."""
    static = Path(__file__).parent / "static"
    return [
        Route("/", overview_page.overview),
        Route("/sign-in", sign_in, methods=["GET", "POST"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/namespace", choose_namespace, methods=["POST"]),
        *queue_pages.ROUTES,
        *record_pages.ROUTES,
        *transcript_pages.ROUTES,
        *artifact_pages.ROUTES,
        *search_page.ROUTES,
        *operation_pages.ROUTES,
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]


def create_app(upstream: Upstream) -> Starlette:
    """The console as an ASGI application, calling the API at `upstream`."""
    app = Starlette(
        routes=routes(),
        exception_handlers={
            StrataError: on_strata_error,
            HTTPException: on_http_error,
            Exception: on_any_error,
        },
    )
    app.state.console = Console(upstream, Roles(upstream), Runs())
    return app
