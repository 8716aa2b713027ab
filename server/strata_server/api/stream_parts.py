"""Client streams that send a header, then chunks (UploadArtifact, ImportNamespace):
each message as the service takes it, one for one and in the order sent. The
services check the order (the header first, and once), so a header sent twice is
refused as such, whatever it holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

H = TypeVar("H")


async def stream_parts(
    requests: AsyncIterator[Any], header: Callable[[Any], H]
) -> AsyncIterator[H | bytes | None]:
    """`header(message.header)` for a header, the bytes of a chunk, None for a message
    holding neither (`requests` have a oneof `part` of `header` and `chunk`)."""
    async for request in requests:
        part = request.WhichOneof("part")
        if part == "chunk":
            yield request.chunk
        elif part == "header":
            yield header(request.header)
        else:
            yield None
