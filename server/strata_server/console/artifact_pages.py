"""Artifacts: the list by owner and kind, an artifact's detail, its download, and
an inline preview of text and images.

Content is served from the console's own origin, so only what cannot run script
is shown inline: raster images, and text drawn into the page escaped. Everything
else is a download (`Content-Disposition: attachment`, `nosniff`, a sandboxing
CSP), so an uploaded HTML or SVG file never runs as the console.
"""

from __future__ import annotations

import io
import os
import tempfile
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from strata import Artifact
from strata._artifact_requests import list_artifacts
from strata_server.console.gateway import page_of
from strata_server.console.view import field, no_store, open_view, render

PAGE_SIZE = 50
PREVIEW_BYTES = 64 * 1024
"""Bytes of a text artifact shown on its page."""
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types a browser draws without running anything (not SVG)."""
TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/xml")


def previewable(artifact: Artifact) -> str:
    """ "text", "image" or "" (no preview) for this artifact's content type."""
    kind = artifact.content_type.split(";")[0].strip().lower()
    if kind in INLINE_IMAGES:
        return "image"
    if kind.startswith(TEXT_TYPES):
        return "text"
    return ""


async def artifacts(request: Request) -> Response:
    """The artifacts, oldest first, of one owner and kind if asked."""
    owner, kind = field(request.query_params, "owner"), field(request.query_params, "kind")
    async with open_view(request) as view:
        paged = list_artifacts(owner or None, kind or None, page_size=PAGE_SIZE)
        page = await page_of(view.client, paged, request.query_params.get("page", ""))
        return no_store(
            render(
                view,
                request,
                "artifacts.html",
                owner=owner,
                kind=kind,
                artifacts=page.items,
                next_page=page.next_page_token,
            )
        )


async def artifact(request: Request) -> Response:
    """One artifact: sizes, compression, sha256, labels; a preview when safe."""
    async with open_view(request) as view:
        found = await view.client.get_artifact(request.path_params["id"])
        preview = previewable(found)
        text = None
        if preview == "text" and found.size:
            buffer = io.BytesIO()
            await view.client.download(found.id, buffer, limit=min(found.size, PREVIEW_BYTES))
            text = buffer.getvalue().decode("utf-8", errors="replace")
        return no_store(
            render(
                view,
                request,
                "artifact.html",
                artifact=found,
                preview=preview,
                text=text,
                truncated=found.size > PREVIEW_BYTES,
            )
        )


async def content(request: Request) -> Response:
    """The artifact's bytes: inline for a raster image asked `?inline=1`, else a
    download under its name."""
    async with open_view(request) as view:
        found = await view.client.get_artifact(request.path_params["id"])
        handle, path = tempfile.mkstemp(prefix="strata-console-download-")
        os.close(handle)
        try:
            await view.client.download(found.id, path)
        except BaseException:
            os.unlink(path)
            raise
    inline = request.query_params.get("inline") == "1" and previewable(found) == "image"
    name = found.name or found.id
    disposition = "inline" if inline else "attachment"
    response = FileResponse(
        path,
        media_type=found.content_type if inline else "application/octet-stream",
        headers={
            "content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
            "x-content-type-options": "nosniff",
            "content-security-policy": "sandbox; default-src 'none'",
            "cache-control": "no-store",
        },
        background=BackgroundTask(os.unlink, path),
    )
    return response


ROUTES: list[BaseRoute] = [
    Route("/artifacts", artifacts),
    Route("/artifacts/{id}", artifact),
    Route("/artifacts/{id}/content", content),
]
