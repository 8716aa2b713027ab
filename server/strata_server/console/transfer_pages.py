"""Export and import from the console, as runs with live progress.

An export streams the namespace's archive into the run's folder; once done, the
run's page links it for download. An import first receives the uploaded archive
into the run's folder (never whole in memory), then sends it to the API with the
chosen conflict policy; its page shows progress, then the summary or the
failure (ALREADY_EXISTS under `fail`).
"""

from __future__ import annotations

import shutil
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from strata_server.console.runs import Run
from strata_server.console.view import back_to, console_of, field, open_view, posted

POLICIES = ("fail", "skip", "overwrite")


async def export(request: Request) -> Response:
    """Start exporting the namespace (or one owner's part of it)."""
    form = await posted(request)
    owner = field(form, "owner") or None
    async with open_view(request) as view:
        upstream, token, namespace = console_of(request).upstream, view.token, view.namespace

        async def work(run: Run) -> Any:
            async with upstream.client(token, namespace) as client:
                return await client.export_namespace(
                    str(run.archive), owner=owner, progress=run.report
                )

        title = f"Export of {namespace}" + (f" (owner {owner})" if owner else "")
        run = console_of(request).runs.start("export", title, token, namespace, work)
    return back_to(f"/operations/runs/{run.id}")


async def import_archive(request: Request) -> Response:
    """Receive an archive, then start importing it."""
    form = await posted(request)
    upload = form.get("archive")
    policy = field(form, "on_conflict") or "fail"
    if not isinstance(upload, UploadFile) or policy not in POLICIES:
        raise HTTPException(400, "choose an archive file and a conflict policy")
    into = field(form, "into") or None
    async with open_view(request) as view:
        upstream, token, namespace = console_of(request).upstream, view.token, view.namespace
        runs = console_of(request).runs
        title = f"Import into {into or namespace} ({policy})"
        run = runs.create("import", title, token, namespace)
        with (run.workdir / "upload.tar").open("wb") as file:
            await upload.seek(0)
            shutil.copyfileobj(upload.file, file)
        await upload.close()

        async def work(run: Run) -> Any:
            async with upstream.client(token, namespace) as client:
                return await client.import_namespace(
                    str(run.workdir / "upload.tar"),
                    into=into or namespace,
                    on_conflict=policy,  # type: ignore[arg-type]
                    progress=run.report,
                )

        runs.begin(run, work)
    return back_to(f"/operations/runs/{run.id}")


ROUTES: list[BaseRoute] = [
    Route("/operations/export", export, methods=["POST"]),
    Route("/operations/import", import_archive, methods=["POST"]),
]
