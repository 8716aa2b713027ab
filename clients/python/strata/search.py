"""What SearchService.Search returns, as plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from strata._convert import datetime_from_timestamp
from strata.v1 import search_pb2

KINDS = {
    "record": search_pb2.SEARCH_KIND_RECORD,
    "transcript_entry": search_pb2.SEARCH_KIND_TRANSCRIPT_ENTRY,
    "artifact": search_pb2.SEARCH_KIND_ARTIFACT,
    "artifact_text": search_pb2.SEARCH_KIND_ARTIFACT_TEXT,
}
"""The kinds a search may be narrowed to, by the names `SearchHit.kind` uses."""
_NAMES = {number: name for name, number in KINDS.items()}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One thing that matched a search across kinds."""

    kind: str
    """"record", "transcript_entry", "artifact" (name or labels matched) or
    "artifact_text" (the text content matched)."""
    target: tuple[str, str] | tuple[str, int]
    """What matched: (collection, id) of a record, (transcript_id, seq) of an entry,
    (artifact_id, name) of an artifact."""
    score: float
    """Relevance in (0, 1]: each kind's best hit scores 1; comparable only within
    one search."""
    snippet: str
    """The matched text around the matches, each match between `**`."""
    owner: str
    """The owner of the data (the transcript's for an entry); empty for records."""
    time: datetime
    """A record's update_time, an entry's or artifact's create_time (aware, UTC)."""

    @classmethod
    def from_proto(cls, message: search_pb2.SearchResult) -> SearchHit:
        """The hit a `strata.v1.SearchHit` message describes."""
        which = message.WhichOneof("target")
        target: tuple[str, str] | tuple[str, int]
        if which == "record":
            target = (message.record.collection, message.record.id)
        elif which == "entry":
            target = (message.entry.transcript_id, message.entry.seq)
        else:
            target = (message.artifact.id, message.artifact.name)
        return cls(
            kind=_NAMES.get(message.kind, "unspecified"),
            target=target,
            score=message.score,
            snippet=message.snippet,
            owner=message.owner,
            time=datetime_from_timestamp(message.time),
        )
