"""A client stream that goes quiet is given up on.

An upload or import holds staging (a temporary file, a multipart upload) from its
first chunk to its end; a client that stops sending without closing the stream
would hold it forever. Each message must come within an idle time, or the call
fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT), and the caller's `finally`
removes the staging. A slow but steady client is never cut off: the clock restarts
with every message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from strata_server.core.errors import DeadlineExceeded

T = TypeVar("T")


async def idle_limited(items: AsyncIterator[T], seconds: float, setting: str) -> AsyncIterator[T]:
    """`items`, failing with DeadlineExceeded when the next takes longer than `seconds`
    to come (`setting` names the knob in the message)."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"the client sent nothing for {seconds:g} s, the server's idle limit "
                f"({setting}); what it sent was discarded",
                reason="IDLE_TIMEOUT",
                metadata={"idle_seconds": f"{seconds:g}"},
            ) from None
        yield item
