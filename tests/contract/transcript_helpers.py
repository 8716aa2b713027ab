"""Helpers the transcript tests share: stubs, appends, and reading a stream to its end."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from strata.v1 import transcripts_pb2, transcripts_pb2_grpc
from tests.contract.helpers import to_struct, unique

Read = transcripts_pb2.ReadTranscriptResponse


def transcript_stub(channel: grpc.Channel) -> transcripts_pb2_grpc.TranscriptServiceStub:
    """A TranscriptService stub over `channel` (which the caller closes)."""
    return transcripts_pb2_grpc.TranscriptServiceStub(channel)


def create_transcript(ts: Any, transcript_id: str | None = None, **fields: Any) -> str:
    """Create a transcript (a fresh id unless given); returns its id."""
    transcript_id = transcript_id or unique("t")
    ts.CreateTranscript(
        transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript_id, **fields)
    )
    return transcript_id


def entry(content: str = "", role: str = "", data: dict[str, Any] | None = None) -> Any:
    """An Entry to append."""
    message = transcripts_pb2.Entry(role=role, content=content)
    if data is not None:
        message.data.CopyFrom(to_struct(data))
    return message


def append(
    ts: Any, transcript_id: str, contents: Iterable[str], role: str = "user", **fields: Any
) -> transcripts_pb2.AppendEntriesResponse:
    """AppendEntries with one entry of `role` per content string."""
    return ts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            id=transcript_id, entries=[entry(c, role) for c in contents], **fields
        )
    )


def read_request(transcript_id: str, **fields: Any) -> transcripts_pb2.ReadTranscriptRequest:
    """A ReadTranscriptRequest."""
    return transcripts_pb2.ReadTranscriptRequest(id=transcript_id, **fields)


@dataclass
class Stream:
    """What a ReadTranscript stream delivered, in order."""

    events: list[str] = field(default_factory=list)
    """The kind of every message: batch, up_to_date, sealed, heartbeat."""
    seqs: list[int] = field(default_factory=list)
    """The seq of every entry delivered."""
    entries: list[transcripts_pb2.Entry] = field(default_factory=list)
    """Every entry delivered."""
    batches: list[Read.Batch] = field(default_factory=list)
    """Every batch."""
    last: Read | None = None
    """The last message."""

    def take(self, message: Read) -> None:
        """Record one message."""
        kind = message.WhichOneof("event")
        assert kind is not None, f"a message with no event: {message}"
        self.events.append(kind)
        self.last = message
        if kind == "batch":
            self.batches.append(message.batch)
            self.entries.extend(message.batch.entries)
            self.seqs.extend(e.seq for e in message.batch.entries)


def read_all(ts: Any, transcript_id: str, **fields: Any) -> Stream:
    """Read a (non-following) stream to its end."""
    stream = Stream()
    for message in ts.ReadTranscript(read_request(transcript_id, **fields), timeout=60):
        stream.take(message)
    return stream


def messages_until(call: Iterator[Read], stream: Stream, done: Any, limit: int = 100_000) -> Stream:
    """Take messages of an open call into `stream` until `done(stream)` holds."""
    for _ in range(limit):
        if done(stream):
            return stream
        stream.take(next(call))
    raise AssertionError(f"condition never held; events: {stream.events[-20:]}")
