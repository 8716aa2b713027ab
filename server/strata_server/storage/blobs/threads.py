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
    however the iteration ends."""
    try:
        while True:
            try:
                item = await asyncio.to_thread(_step, generator)
            except Exception as error:
                raise translate(error) from error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        await asyncio.to_thread(generator.close)
