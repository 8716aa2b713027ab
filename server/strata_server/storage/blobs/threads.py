"""Blocking blob I/O driven from the event loop, one step per worker-thread hop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def _step(generator: Generator[T, None, None]) -> T | object:
    return next(generator, _DONE)


async def iterate(
    generator: Generator[T, None, None], translate: Callable[[Exception], Exception]
) -> AsyncIterator[T]:
    """Drive a blocking generator from a worker thread, one item per hop, so the
    event loop never blocks and only one item is in memory at a time. Errors pass
    through `translate`; the generator is closed (its files and responses released)
    however the iteration ends.

    A caller that goes away (a cancelled download or export) cancels the wait, not
    the step running in its thread: the generator is closed only once that step has
    returned, since closing a running generator fails ("generator already
    executing") and would turn a normal cancellation into an error."""
    loop = asyncio.get_running_loop()
    step: asyncio.Future[T | object] | None = None
    try:
        while True:
            step = loop.run_in_executor(None, _step, generator)
            try:
                item = await asyncio.shield(step)
            except Exception as error:
                raise translate(error) from error
            step = None
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        if step is not None:
            await asyncio.wait([step])
            if not step.cancelled():
                step.exception()  # retrieved: what it read is of no use to anyone now
        await asyncio.to_thread(generator.close)
