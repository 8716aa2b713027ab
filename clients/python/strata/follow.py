"""Reading transcripts: `client.follow(...)` and `client.read_transcript(...)`.

    with client.follow("chat-1") as entries:          # from the first entry
        for entry in entries:                         # new ones as they are appended
            print(entry.seq, entry.role, entry.content)
    # the loop ends by itself once the transcript is sealed and read to its end

    async with aclient.follow("chat-1", from_seq=-20) as entries:   # the last 20, then live
        async for entry in entries:
            ...

Each yields the transcript's entries in seq order, each exactly once, over one
ReadTranscript stream. When that stream breaks (the connection drops, the server
restarts or goes away for a while), it opens a new one from the seq after the last
entry it yielded, so the caller sees no gap and no duplicate. It keeps trying, with
the client's RetryPolicy backoff, for up to `reconnect_for` seconds since the last
message it got, then raises the last error (Unavailable). Errors a retry cannot
cure (NotFound for an unknown or deleted transcript, InvalidArgument, ...) are
raised at once.

`read_transcript` is the same without following: it ends once it has delivered
every entry appended when it caught up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from strata._machines import Deliver, Machine, Open, Read, Sleep, aiterate, iterate
from strata._retry import backoff_delays
from strata._rpc import StreamRpc
from strata._transport import AsyncStream, AsyncTransport, Stream, Transport
from strata.config import RetryPolicy
from strata.errors import StrataError
from strata.transcripts import Entry
from strata.v1 import transcripts_pb2

__all__ = ["AsyncFollow", "Follow"]

DEFAULT_RECONNECT_FOR = 30.0
"""Seconds a follower keeps reconnecting after its stream broke."""

_RECONNECTABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL}
)
"""Codes of a broken stream: the transport failed (UNAVAILABLE), the server cancelled
it while shutting down (CANCELLED), or the connection was reset mid-frame (INTERNAL
without a server ErrorInfo)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What to read of a transcript, as `follow` or `read_transcript` asked."""

    transcript_id: str
    from_seq: int
    follow: bool
    max_batch_bytes: int
    reconnect_for: float | None
    namespace: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.from_seq, int):
            raise TypeError("from_seq must be an int")
        if not isinstance(self.max_batch_bytes, int) or self.max_batch_bytes < 0:
            raise ValueError("max_batch_bytes must be a non-negative int (0: the server's)")


def follow(
    transcript_id: str,
    from_seq: int = 1,
    *,
    max_batch_bytes: int = 0,
    reconnect_for: float | None = DEFAULT_RECONNECT_FOR,
    namespace: str | None = None,
) -> Reading:
    """Iterate over a transcript's entries from `from_seq` (negative: that many
    back from the end) and on as they are appended, each exactly once, until
    the transcript is sealed; resumes after a dropped connection for up to
    `reconnect_for` seconds (None: forever). See `strata.follow`."""
    return Reading(transcript_id, from_seq, True, max_batch_bytes, reconnect_for, namespace)


def read_transcript(
    transcript_id: str,
    from_seq: int = 1,
    *,
    max_batch_bytes: int = 0,
    namespace: str | None = None,
) -> Reading:
    """Iterate over a transcript's entries from `from_seq` (negative: that many
    back from the end) up to its end as of when the read catches up. Raises
    OutOfRange for a `from_seq` past the end."""
    return Reading(
        transcript_id, from_seq, False, max_batch_bytes, DEFAULT_RECONNECT_FOR, namespace
    )


class _Cursor:
    """Where a stream stands and what it has said, shared by both followers: it reads
    each message and says where to resume, so that a reconnect neither skips nor
    repeats an entry."""

    def __init__(self, reading: Reading, retry: RetryPolicy) -> None:
        self.reading = reading
        self.next_seq: int | None = None
        self.up_to_date = False
        self.sealed = False
        self.finished = False
        self.reconnects = 0
        self.closed = False
        self.stream: Stream[Any] | AsyncStream[Any] | None = None
        """The stream open now, for `close` to cancel."""
        self._retry = retry
        self._delays = backoff_delays(retry)
        self._broken_since: float | None = None

    def entries(self) -> Machine[None]:
        """The reading, as a machine (`strata._machines`) that delivers the
        entries: both followers run it, each with its own driver."""
        while not (self.finished or self.closed):
            stream = self.stream = yield Open(self.rpc())
            delay: float | None
            try:
                while (message := (yield Read(stream))) is not None:
                    entries = self.take(message)
                    if entries:
                        yield Deliver(entries)
                    if self.finished or self.closed:
                        return
            except StrataError as error:
                if self.closed:
                    return
                delay = self.backoff(error)
            except asyncio.CancelledError:
                if self.closed:
                    return
                raise
            else:
                delay = self.ended()
            finally:
                self.stream = None
            if delay is not None:
                yield Sleep(delay)

    def close(self) -> None:
        """Stop reading: cancel the stream open now; the machine ends."""
        self.closed = True
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None

    def rpc(self) -> StreamRpc[transcripts_pb2.ReadTranscriptResponse, Any]:
        """The call that (re)opens the stream where it stands."""
        reading = self.reading
        from_seq = self.next_seq if self.next_seq is not None else reading.from_seq
        return StreamRpc(
            "transcripts",
            "ReadTranscript",
            lambda ns: transcripts_pb2.ReadTranscriptRequest(
                namespace=ns,
                id=reading.transcript_id,
                from_seq=from_seq,
                follow=reading.follow,
                max_batch_bytes=reading.max_batch_bytes,
            ),
            lambda message: message,
            reading.namespace,
        )

    def take(self, message: transcripts_pb2.ReadTranscriptResponse) -> list[Entry]:
        """Read one message; returns its entries (none for the other kinds)."""
        self._broken_since = None
        self._delays = backoff_delays(self._retry)
        kind = message.WhichOneof("event")
        if kind == "batch":
            entries = [Entry.from_proto(item) for item in message.batch.entries]
            self.next_seq = message.batch.next_seq
            self.up_to_date = False
            return entries
        if kind == "up_to_date":
            self.next_seq = message.up_to_date.next_seq
            self.up_to_date = True
        elif kind == "heartbeat":
            self.next_seq = message.heartbeat.next_seq
        elif kind == "sealed":
            self.next_seq = message.sealed.next_seq
            self.up_to_date = self.sealed = self.finished = True
        return []

    def ended(self) -> float | None:
        """The server closed the stream without an error: seconds to wait before
        reopening it, or None when the reading is over."""
        if self.sealed or not self.reading.follow:
            self.finished = True
            return None
        return self.backoff(None)

    def backoff(self, error: StrataError | None) -> float:
        """Seconds to wait before reconnecting after the stream broke with `error`
        (None: it ended early); raises `error` when reconnecting cannot help or
        `reconnect_for` has run out."""
        if error is not None and (
            error.code not in _RECONNECTABLE
            or (error.code == grpc.StatusCode.INTERNAL and error.reason)
        ):
            raise error
        now = time.monotonic()
        reconnect_for = self.reading.reconnect_for
        if self._broken_since is None:
            self._broken_since = now
        elif reconnect_for is not None and now - self._broken_since > reconnect_for:
            if error is not None:
                raise error
            raise StrataError("the stream kept ending early", code=grpc.StatusCode.UNAVAILABLE)
        self.reconnects += 1
        return next(self._delays)


class _FollowBase:
    """What both followers show about where they stand."""

    _cursor: _Cursor

    @property
    def next_seq(self) -> int | None:
        """The seq of the next entry to deliver, once the server has said (None
        before the first message)."""
        return self._cursor.next_seq

    @property
    def up_to_date(self) -> bool:
        """Whether every entry appended so far has been delivered (as of the last
        message: the server says so each time the stream catches up)."""
        return self._cursor.up_to_date

    @property
    def sealed(self) -> bool:
        """Whether the transcript is sealed and was read to its end."""
        return self._cursor.sealed

    @property
    def reconnects(self) -> int:
        """How many times the stream was opened again after it broke."""
        return self._cursor.reconnects


class Follow(_FollowBase):
    """The entries of a transcript on a blocking `Client`, in seq order, each once,
    resuming after a dropped connection. Iterate over it; `close()` it (a `with`
    block does) to stop early. Use it from one thread."""

    def __init__(self, transport: Transport, reading: Reading) -> None:
        self._cursor = _Cursor(reading, transport.config.retry)
        self._entries = iterate(transport, self._cursor.entries())

    def __iter__(self) -> Iterator[Entry]:
        return self

    def __next__(self) -> Entry:
        """The next entry, waiting for one while following; StopIteration once the
        transcript is sealed and read (or, not following, caught up), or closed."""
        entry: Entry = next(self._entries)
        return entry

    def close(self) -> None:
        """Cancel the stream; iteration stops."""
        self._cursor.close()

    def __enter__(self) -> Follow:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncFollow(_FollowBase):
    """`Follow` for an `AsyncClient`: `async for`, `await close()` and `async with`."""

    def __init__(self, transport: AsyncTransport, reading: Reading) -> None:
        self._cursor = _Cursor(reading, transport.config.retry)
        self._entries = aiterate(transport, self._cursor.entries())

    def __aiter__(self) -> AsyncFollow:
        return self

    async def __anext__(self) -> Entry:
        """As `Follow.__next__`."""
        entry: Entry = await anext(self._entries)
        return entry

    async def close(self) -> None:
        """Cancel the stream; iteration stops."""
        self._cursor.close()

    async def __aenter__(self) -> AsyncFollow:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
