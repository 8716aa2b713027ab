"""Client logic written once for both clients, as generators ("machines") that
yield effects, and the two drivers that carry the effects out: `run` on the
blocking transport, `arun` on the asyncio one.

A machine yields, and is sent back:
- an `Rpc`: the call's result (`Transport.unary`); `Stoppable(rpc, stop)`
  the same, unless the stop event (threading's or asyncio's) is set first;
- `Open(rpc, then)`: a `Stream` of the call's responses (`Transport.server_stream`);
- `Read(stream)`: the stream's next response, or None at its end;
- `Send(rpc, chunks)`: the result of a call that streams a file's chunks;
- `Sleep(seconds, stop)`: nothing, once the time has passed (or `stop` is set);
- `Blocking(fn)`: what `fn()` returns. File I/O goes here: `run` calls it
  inline, `arun` in a worker thread, so that it never blocks the event loop;
- `Deliver(items)`: nothing; the items go to the caller of `iterate` /
  `aiterate`, and an exception the caller throws in at one of them (a
  generator's `throw`, `close`) is thrown into the machine.

An effect that fails has its exception thrown into the machine, which may catch
it (a `StrataError` of a call, an `OSError` of a file) or let it through. What a
machine returns is what the driver returns. The uploads, downloads, exports,
imports and admin progress streams are machines, and so are the workers' loops,
acks and heartbeat (`strata._worker`, `strata._leases`) and the transcript
follower (`strata.follow`): each is written once, and the clients differ only in
their driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeAlias, TypeVar

from google.protobuf.message import Message

from strata._rpc import Rpc, StreamRpc
from strata._transport import AsyncStream, AsyncTransport, Cancelled, Stream, Transport
from strata.artifacts import Progress
from strata.errors import StrataError

T = TypeVar("T")


@dataclass(slots=True)
class Chunks:
    """A file sent as the messages of a client stream, from its position on."""

    file: IO[bytes] | None
    """What to read; None sends no chunk (the server already has the content)."""
    wrap: Callable[[bytes], Message]
    """The request message carrying one chunk."""
    size: int
    """Bytes per chunk."""
    progress: Progress | None = None
    """Called after each chunk with the bytes sent so far and `total`."""
    total: int | None = None
    """Bytes to send, when known."""
    sent: int = field(default=0, init=False)

    def message(self, piece: bytes) -> Message:
        """The request carrying `piece`, counted as sent."""
        self.sent += len(piece)
        if self.progress is not None:
            self.progress(self.sent, self.total)
        return self.wrap(piece)

    def skipped(self) -> None:
        """Report the whole content as sent, when no chunk goes."""
        if self.progress is not None:
            self.progress(self.total or 0, self.total)


@dataclass(frozen=True, slots=True)
class Open:
    """Open a streaming call; with `then`, its requests stream too."""

    rpc: StreamRpc[Any, Any]
    then: Chunks | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """Read the next response of an open stream."""

    stream: Stream[Any] | AsyncStream[Any]


@dataclass(frozen=True, slots=True)
class Send:
    """Make a client-streaming call: its request, then the chunks."""

    rpc: StreamRpc[Any, Any]
    chunks: Chunks


@dataclass(frozen=True, slots=True)
class Stoppable:
    """Send a unary call that `stop` cancels: once `stop` is set, the call is
    cancelled and `Cancelled` is thrown into the machine."""

    rpc: Rpc[Any, Any]
    stop: threading.Event | asyncio.Event


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait, or with `stop` until it is set if that comes first."""

    seconds: float
    stop: threading.Event | asyncio.Event | None = None


@dataclass(frozen=True, slots=True)
class Blocking(Generic[T]):
    """Call a function that may block (file I/O)."""

    fn: Callable[[], T]


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand items to the caller iterating over the machine (`iterate`,
    `aiterate`); nothing is sent back."""

    items: list[Any]


Effect: TypeAlias = Rpc[Any, Any] | Stoppable | Open | Read | Send | Sleep | Blocking[Any] | Deliver
Machine: TypeAlias = Generator[Effect, Any, T]
"""Logic that yields effects and returns a `T`."""


def _step(machine: Machine[Any], reply: Any, error: BaseException | None) -> Any:
    """The next effect of `machine`, once the previous one gave `reply` or
    raised `error`; raises StopIteration (with the machine's result) at the end."""
    return machine.send(reply) if error is None else machine.throw(error)


def iterate(transport: Transport, machine: Machine[T]) -> Generator[Any, None, T]:
    """Carry out the effects of `machine` on this thread, yielding the items it
    delivers; returns its result."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = _step(machine, reply, error)
        except StopIteration as done:
            result: T = done.value
            return result
        reply, error = None, None
        if isinstance(effect, Deliver):
            try:
                yield from effect.items
            except BaseException as exc:  # thrown in by the caller: the machine decides
                error = exc
            continue
        try:
            reply = _carry_out(transport, effect)
        except BaseException as exc:  # thrown into the machine, which may clean up
            error = exc


def run(transport: Transport, machine: Machine[T]) -> T:
    """Carry out the effects of `machine` on this thread; its result."""
    driven = iterate(transport, machine)
    try:
        item = next(driven)
    except StopIteration as done:
        result: T = done.value
        return result
    raise TypeError(f"a machine that is run delivered {item!r}")


def _carry_out(transport: Transport, effect: Effect) -> Any:
    match effect:
        case Rpc():
            return transport.unary(effect)
        case Stoppable(rpc=rpc, stop=stop):
            assert isinstance(stop, threading.Event)
            return transport.unary(rpc, stop=stop)
        case Read(stream=stream):
            assert isinstance(stream, Stream)
            return stream.read()
        case Open(rpc=rpc, then=then):
            return transport.server_stream(rpc, None if then is None else _file_chunks(then))
        case Send(rpc=rpc, chunks=chunks):
            return transport.client_stream(rpc, _file_chunks(chunks))
        case Sleep(seconds=seconds, stop=None):
            time.sleep(seconds)
            return None
        case Sleep(seconds=seconds, stop=stop):
            assert isinstance(stop, threading.Event)
            stop.wait(seconds)
            return None
        case Blocking(fn=fn):
            return fn()
        case Deliver():
            raise TypeError("Deliver is the driver's own")


def _file_chunks(chunks: Chunks) -> Iterator[Message]:
    if chunks.file is None:
        chunks.skipped()
        return
    while piece := chunks.file.read(chunks.size):
        yield chunks.message(piece)


async def aiterate(
    transport: AsyncTransport, machine: Machine[Any], result: list[Any] | None = None
) -> AsyncGenerator[Any, None]:
    """Carry out the effects of `machine` on the event loop, yielding the items
    it delivers; its result is appended to `result`."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = _step(machine, reply, error)
        except StopIteration as done:
            if result is not None:
                result.append(done.value)
            return
        reply, error = None, None
        if isinstance(effect, Deliver):
            try:
                for item in effect.items:
                    yield item
            except BaseException as exc:  # thrown in by the caller: the machine decides
                error = exc
            continue
        try:
            reply = await _acarry_out(transport, effect)
        except BaseException as exc:  # thrown into the machine, which may clean up
            error = exc


async def arun(transport: AsyncTransport, machine: Machine[T]) -> T:
    """Carry out the effects of `machine` on the event loop; its result."""
    result: list[T] = []
    async for item in aiterate(transport, machine, result):
        raise TypeError(f"a machine that is run delivered {item!r}")
    return result[0]


async def _acarry_out(transport: AsyncTransport, effect: Effect) -> Any:
    match effect:
        case Rpc():
            return await transport.unary(effect)
        case Stoppable(rpc=rpc, stop=stop):
            assert isinstance(stop, asyncio.Event)
            return await _until_stopped(transport.unary(rpc), stop)
        case Read(stream=stream):
            assert isinstance(stream, AsyncStream)
            return await stream.read()
        case Open(rpc=rpc, then=then):
            return transport.server_stream(rpc, None if then is None else _afile_chunks(then))
        case Send(rpc=rpc, chunks=chunks):
            return await transport.client_stream(rpc, _afile_chunks(chunks))
        case Sleep(seconds=seconds, stop=None):
            await asyncio.sleep(seconds)
            return None
        case Sleep(seconds=seconds, stop=stop):
            assert isinstance(stop, asyncio.Event)
            if seconds > 0:  # asyncio.timeout, as wait_for may swallow a cancellation (3.11)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        await stop.wait()
            return None
        case Blocking(fn=fn):
            return await asyncio.to_thread(fn)
        case Deliver():
            raise TypeError("Deliver is the driver's own")


async def _until_stopped(call: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """What `call` returns, unless `stop` is set first: it is then cancelled,
    raising `Cancelled`."""
    running = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not running.done():
            running.cancel()
            await asyncio.wait({running})
    if running.cancelled():
        raise Cancelled
    return running.result()


async def _afile_chunks(chunks: Chunks) -> AsyncIterator[Message]:
    if chunks.file is None:
        chunks.skipped()
        return
    file = chunks.file
    while piece := await asyncio.to_thread(file.read, chunks.size):
        yield chunks.message(piece)


def progressed(
    rpc: StreamRpc[Any, Any],
    last: str,
    progress: Callable[[Any], object] | None,
    then: Chunks | None = None,
) -> Machine[Any]:
    """A call that streams Progress messages (`progress` is called with each)
    and then one message whose field `last` is the result, which it returns."""
    stream = yield Open(rpc, then)
    result = None
    while (event := (yield Read(stream))) is not None:
        if event.HasField("progress"):
            if progress is not None:
                progress(event.progress)
        else:
            result = getattr(event, last)
    if result is None:
        raise StrataError(f"the server ended {rpc.method} without its {last}")
    return result
