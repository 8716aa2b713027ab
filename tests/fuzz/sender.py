"""Sends calls over a real channel, many at a time, and tallies every answer.

Hypothesis draws calls on the test's thread; `Sender.submit` hands each to an
asyncio loop on a thread of its own, with at most `concurrency` in flight, so a
long poll or an idle follow does not stall the generator. Bodies go as raw bytes
(no serializer). Streams are read for at most STREAM_MESSAGES messages, or until
nothing arrives for STREAM_IDLE seconds, and then cancelled; every call has a
deadline.

Client-streaming calls go through the synchronous API on worker threads: the
asyncio client reports its own INTERNAL "Internal error from Core" when the
server answers while requests are still being written (grpc/grpc#36066), which
would be taken for the server's answer.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from tests.fuzz.calls import Call, Method

UNARY_DEADLINE = 5.0
STREAM_DEADLINE = 5.0
STREAM_MESSAGES = 16
STREAM_IDLE = 0.5
FORBIDDEN = frozenset({"UNKNOWN", "INTERNAL"})
"""Answers no caller input may produce (DESIGN.md, Errors)."""
KEEP_BODIES = 64 * 1024
"""An offending request larger than this is reported by its head only."""
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]

# What the client itself ended, not a status from the server:
LIMIT = "client:read-limit"
IDLE = "client:idle"

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Offence:
    """One call answered with a forbidden status, kept as text (not the request,
    which may be megabytes). `logged` is what the server logged for it, found by
    the call's request id."""

    path: str
    code: str
    details: str
    request_id: str
    shown: str
    literal: str
    logged: str = ""

    @classmethod
    def of(cls, call: Call, code: str, details: str, request_id: str) -> Offence:
        size = sum(map(len, call.bodies))
        literal = call.literal() if size <= KEEP_BODIES else f"<{size} bytes: too long to list>"
        shown = call.describe(300) if size <= KEEP_BODIES else call.head(300)
        return cls(call.method.path, code, details, request_id, shown, literal)


@dataclass
class Tally:
    """Every answer, counted by code and by method; offences kept as text."""

    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    by_method: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    origins: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: collections.Counter[str] = field(default_factory=collections.Counter)
    """Time spent waiting for answers, by method: where a run's time goes."""
    offences: list[Offence] = field(default_factory=list)
    cpu: tuple[float, float] = (0.0, 0.0)
    """CPU seconds of the fuzzing process and of the server during the run."""
    rss_growth_mb: float = 0.0
    """How far the server's peak RSS rose above its RSS at the start of the run."""
    crashes: list[str] = field(default_factory=list)
    """Exceptions in the sender itself (a bug in the suite, never the server's)."""

    @property
    def requests(self) -> int:
        return sum(self.codes.values())

    def record(self, call: Call, code: str, details: str, request_id: str, seconds: float) -> None:
        self.seconds[call.method.path] += seconds
        self.codes[code] += 1
        self.by_method[call.method.path][code] += 1
        self.origins[call.origin] += 1
        if code in FORBIDDEN:
            self.offences.append(Offence.of(call, code, details, request_id))

    def merge(self, other: Tally) -> None:
        self.codes.update(other.codes)
        for path, counts in other.by_method.items():
            self.by_method[path].update(counts)
        self.origins.update(other.origins)
        self.seconds.update(other.seconds)
        self.cpu = (self.cpu[0] + other.cpu[0], self.cpu[1] + other.cpu[1])
        self.rss_growth_mb = max(self.rss_growth_mb, other.rss_growth_mb)
        self.offences.extend(other.offences)
        self.crashes.extend(other.crashes)


def shape_of(text: str) -> str:
    """Text with message types, numbers and quoted values blurred, so that one bug
    met through many RPCs and values reads as one failure class."""
    text = re.sub(r"message with type '[^']*'", "message with type '…'", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"\d+", "N", text)[:200]


def failure_classes(offences: list[Offence]) -> dict[tuple[str, str], list[Offence]]:
    """Offences grouped by code and the shape of what the server logged (or, when it
    logged nothing, of the status details)."""
    groups: dict[tuple[str, str], list[Offence]] = collections.defaultdict(list)
    for offence in offences:
        groups[offence.code, shape_of(offence.logged or offence.details)].append(offence)
    return groups


class Sender:
    """Runs calls on a background event loop; `close` waits for all of them."""

    def __init__(self, target: str, concurrency: int = 24) -> None:
        self.tally = Tally()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._sync_channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="fuzz-stream")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._channel = asyncio.run_coroutine_threadsafe(self._open(target), self._loop).result()

    async def _open(self, target: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)

    def submit(self, call: Call) -> None:
        """Start `call`; blocks while `concurrency` calls are in flight."""
        self._slots.acquire()
        future = asyncio.run_coroutine_threadsafe(self._run(call), self._loop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        self._slots.release()

    def close(self, timeout: float = 60.0) -> None:
        """Wait until every submitted call has its answer, then close the channels."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)
        asyncio.run_coroutine_threadsafe(self._channel.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._threads.shutdown()
        self._sync_channel.close()

    async def _run(self, call: Call) -> None:
        request_id = f"fuzz-{next(self._ids)}"
        metadata = (("x-request-id", request_id), *call.metadata)
        started = time.monotonic()
        try:
            if call.method.client_streaming:
                code, details = await self._loop.run_in_executor(
                    self._threads, self._send_streaming, call, metadata
                )
            else:
                code, details = await self._send(call, metadata)
        except grpc.aio.AioRpcError as error:
            code, details = error.code().name, error.details() or ""
        except Exception as error:  # a bug in the suite: reported, never swallowed
            self.tally.crashes.append(f"{call.head(200)}: {error!r}")
            return
        self.tally.record(call, code, details, request_id, time.monotonic() - started)

    async def _send(self, call: Call, metadata: Metadata) -> tuple[str, str]:
        """A unary or server-streaming call, on the asyncio channel."""
        path, body = call.method.path, call.bodies[0]
        if not call.method.server_streaming:
            await self._channel.unary_unary(path)(body, timeout=UNARY_DEADLINE, metadata=metadata)
            return "OK", ""
        stream = self._channel.unary_stream(path)(body, timeout=STREAM_DEADLINE, metadata=metadata)
        try:
            for _ in range(STREAM_MESSAGES):
                try:
                    message = await asyncio.wait_for(stream.read(), STREAM_IDLE)
                except TimeoutError:
                    return IDLE, ""
                if message is grpc.aio.EOF:
                    code = await stream.code()
                    return code.name, await stream.details() or ""
            return LIMIT, ""
        finally:
            stream.cancel()

    def _send_streaming(self, call: Call, metadata: Metadata) -> tuple[str, str]:
        """A client-streaming or bidirectional call, on the synchronous channel (on a
        worker thread)."""
        return send_sync(self._sync_channel, call.method, call.bodies, metadata)


def send_sync(
    channel: grpc.Channel, method: Method, bodies: list[bytes], metadata: Metadata = ()
) -> tuple[str, str]:
    """One call of any kind through the synchronous API: (code, details). A stream is
    read for at most STREAM_MESSAGES messages or until its deadline."""
    path = method.path
    try:
        if not method.server_streaming:
            if method.client_streaming:
                channel.stream_unary(path)(iter(bodies), timeout=UNARY_DEADLINE, metadata=metadata)
            else:
                channel.unary_unary(path)(bodies[0], timeout=UNARY_DEADLINE, metadata=metadata)
            return "OK", ""
        if method.client_streaming:
            stream = channel.stream_stream(path)(
                iter(bodies), timeout=STREAM_DEADLINE, metadata=metadata
            )
        else:
            stream = channel.unary_stream(path)(
                bodies[0], timeout=STREAM_DEADLINE, metadata=metadata
            )
        try:
            for count, _ in enumerate(stream):
                if count + 1 >= STREAM_MESSAGES:
                    return LIMIT, ""
            return "OK", ""
        finally:
            stream.cancel()
    except grpc.RpcError as error:
        return error.code().name, error.details() or ""
