"""Transcripts as the client returns them: plain Python values instead of
`strata.v1.transcripts_pb2` messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strata._convert import datetime_from_timestamp, dict_from_struct
from strata.v1 import transcripts_pb2

__all__ = ["Appended", "Entry", "Transcript", "TranscriptHit"]


@dataclass(frozen=True, slots=True)
class Transcript:
    """An append-only log of entries (a chat or agent session)."""

    namespace: str
    """The tenant or workspace the transcript belongs to."""
    id: str
    """Unique within the namespace."""
    owner: str
    """Who the transcript belongs to; may be empty."""
    title: str
    """A human-readable title; may be empty."""
    labels: dict[str, str] = field(hash=False)
    """Free key/value labels."""
    next_seq: int
    """The seq the next entry gets; the entries are 1..next_seq-1."""
    size_bytes: int
    """Bytes of all entries, as the server counts them for batches."""
    sealed: bool
    """Whether the transcript takes no more entries."""
    create_time: datetime
    """When it was created (aware, UTC)."""
    update_time: datetime
    """When it last changed (aware, UTC)."""
    seal_time: datetime | None = None
    """When it was sealed (aware, UTC); None while open."""
    parent: tuple[str, str] | None = None
    """(collection, id) of the record it belongs to; None when none."""
    archived: bool = False
    """Whether its entries are in the archive tier (compressed segments in the blob
    store); reads and search work alike, `Client.restore_transcript` brings it back."""

    @classmethod
    def from_proto(cls, message: transcripts_pb2.Transcript) -> Transcript:
        """The transcript a `strata.v1.Transcript` message describes."""
        return cls(
            namespace=message.namespace,
            id=message.id,
            owner=message.owner,
            title=message.title,
            labels=dict(message.labels),
            next_seq=message.next_seq,
            size_bytes=message.size_bytes,
            sealed=message.sealed,
            create_time=datetime_from_timestamp(message.create_time),
            update_time=datetime_from_timestamp(message.update_time),
            seal_time=(
                datetime_from_timestamp(message.seal_time)
                if message.HasField("seal_time")
                else None
            ),
            parent=(message.parent.collection, message.parent.id)
            if message.HasField("parent")
            else None,
            archived=message.tier == transcripts_pb2.TRANSCRIPT_TIER_ARCHIVED,
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a transcript."""

    seq: int
    """Its position: 1 for the first entry, then +1 with no gap."""
    role: str
    """Who or what produced it, e.g. "user", "assistant", "tool"; may be empty."""
    content: str
    """Its text."""
    data: dict[str, Any] | None = field(hash=False)
    """Its structured data, or None."""
    create_time: datetime
    """When it was appended (aware, UTC)."""

    @classmethod
    def from_proto(cls, message: transcripts_pb2.Entry) -> Entry:
        """The entry a `strata.v1.Entry` message describes."""
        return cls(
            seq=message.seq,
            role=message.role,
            content=message.content,
            data=dict_from_struct(message.data) if message.HasField("data") else None,
            create_time=datetime_from_timestamp(message.create_time),
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an append landed: its entries are first_seq..next_seq-1."""

    first_seq: int
    """The seq of the first entry appended."""
    next_seq: int
    """The transcript's next seq after the append."""

    @classmethod
    def from_proto(cls, message: transcripts_pb2.AppendEntriesResponse) -> Appended:
        """The outcome a `strata.v1.AppendEntriesResponse` message describes."""
        return cls(first_seq=message.first_seq, next_seq=message.next_seq)


@dataclass(frozen=True, slots=True)
class TranscriptHit:
    """An entry matching a search."""

    transcript_id: str
    """The transcript holding the entry."""
    seq: int
    """The entry's seq (`client.read_transcript(transcript_id, from_seq=seq)`)."""
    role: str
    """The entry's role."""
    snippet: str
    """A fragment of the content around the matches, each match between `**`."""
    score: float
    """Relevance; higher is better, comparable only within one search."""
    create_time: datetime
    """When the entry was appended (aware, UTC)."""

    @classmethod
    def from_proto(cls, message: transcripts_pb2.TranscriptHit) -> TranscriptHit:
        """The hit a `strata.v1.TranscriptHit` message describes."""
        return cls(
            transcript_id=message.transcript_id,
            seq=message.seq,
            role=message.role,
            snippet=message.snippet,
            score=message.score,
            create_time=datetime_from_timestamp(message.create_time),
        )
