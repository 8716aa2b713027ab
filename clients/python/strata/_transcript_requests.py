"""The transcript calls (TranscriptService), described without doing any I/O.

Like the record calls of `strata._record_requests`, each call builder below is one
method of `Client` and `AsyncClient`, with its signature and docstring, and
returns the `Rpc` (or `PagedRpc`) that the clients send. ReadTranscript, a
stream, is `strata.follow`.

Which calls are retried after UNAVAILABLE: the reads, `seal_transcript` (sealing
twice seals once) and `restore_transcript` (likewise) always; `create_transcript`
and the appends only with a `request_id`. Never `delete_transcript` (a repeat
after a success that was not heard fails with NOT_FOUND).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from strata._convert import parent_record, struct_from_dict
from strata._rpc import PagedRpc, Rpc, namespaced_call, paged_call
from strata.transcripts import Appended, Transcript, TranscriptHit
from strata.v1 import transaction_pb2, transcripts_pb2

EntryLike: TypeAlias = str | Mapping[str, Any]
"""An entry to append: its content as a string (no role, no data), or a mapping
with any of `content` (str), `role` (str) and `data` (a JSON object)."""

_ENTRY_KEYS = frozenset({"content", "role", "data"})


def entry_message(value: EntryLike, name: str = "entry") -> transcripts_pb2.Entry:
    """The `strata.v1.Entry` to append for `value`; TypeError or ValueError for
    anything else."""
    if isinstance(value, str):
        return transcripts_pb2.Entry(content=value)
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a string or a mapping, not {type(value).__name__}")
    unknown = set(value) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{name} has unknown keys {sorted(unknown)}; use content, role, data")
    content, role, data = value.get("content", ""), value.get("role", ""), value.get("data")
    if not isinstance(content, str) or not isinstance(role, str):
        raise TypeError(f"{name}: content and role must be strings")
    message = transcripts_pb2.Entry(content=content, role=role)
    if data is not None:
        message.data.CopyFrom(struct_from_dict(data))
    return message


def entry_messages(entries: Iterable[EntryLike]) -> list[transcripts_pb2.Entry]:
    """The entries of an append, checked one by one."""
    if isinstance(entries, str | Mapping):
        raise TypeError("entries must be a list of entries, not a single one")
    return [entry_message(value, f"entries[{i}]") for i, value in enumerate(entries)]


def _expected(expected_next_seq: int | None) -> int:
    if expected_next_seq is None:
        return 0
    if not isinstance(expected_next_seq, int) or expected_next_seq < 1:
        raise ValueError("expected_next_seq must be a positive int (or None)")
    return expected_next_seq


def append_write(
    transcript_id: str, entries: Iterable[EntryLike], *, expected_next_seq: int | None = None
) -> transaction_pb2.Write:
    """A Commit write that appends `entries` (see `strata.writes.append`)."""
    return transaction_pb2.Write(
        append=transaction_pb2.AppendEntriesWrite(
            id=transcript_id,
            entries=entry_messages(entries),
            expected_next_seq=_expected(expected_next_seq),
        )
    )


# The calls; each docstring is the documentation of the client method.


def create_transcript(
    transcript_id: str = "",
    *,
    owner: str = "",
    title: str = "",
    labels: Mapping[str, str] | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
    parent: tuple[str, str] | None = None,
) -> Rpc[transcripts_pb2.Transcript, Transcript]:
    """Create an empty transcript and return it; `transcript_id` empty lets the
    server choose the id. `owner` and `title` are free text, `labels` string
    pairs, `parent` the (collection, id) of the record it belongs to (deleting
    that record then refuses or cascades). Raises AlreadyExists when the id is
    taken. With a `request_id` a retry returns the first result, so the client
    retries it after UNAVAILABLE."""
    request = transcripts_pb2.CreateTranscriptRequest(
        transcript_id=transcript_id,
        owner=owner,
        title=title,
        labels=dict(labels or {}),
        request_id=request_id or "",
        parent=parent_record(parent),
    )
    return namespaced_call(
        "transcripts",
        "CreateTranscript",
        request,
        Transcript.from_proto,
        namespace,
        bool(request_id),
    )


def get_transcript(
    transcript_id: str, *, namespace: str | None = None
) -> Rpc[transcripts_pb2.Transcript, Transcript]:
    """Return a transcript's description (next_seq, size, sealed, ...), not its
    entries. Raises NotFound for an unknown id."""
    request = transcripts_pb2.GetTranscriptRequest(id=transcript_id)
    return namespaced_call(
        "transcripts", "GetTranscript", request, Transcript.from_proto, namespace, True
    )


def list_transcripts(
    owner: str | None = None,
    *,
    page_size: int = 0,
    namespace: str | None = None,
    parent: tuple[str, str] | None = None,
) -> PagedRpc[Transcript]:
    """Iterate over transcripts, newest first, only `owner`'s and those of the
    record `parent` (collection, id) if given, fetching `page_size` per call (0:
    the server's default) until the last page."""
    query = transcripts_pb2.ListTranscriptsRequest(
        owner=owner or "", page_size=page_size, parent=parent_record(parent)
    )
    return paged_call("ListTranscripts", query, _listed, namespace, "transcripts")


def append_entries(
    transcript_id: str,
    entries: Iterable[EntryLike],
    *,
    expected_next_seq: int | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
) -> Rpc[transcripts_pb2.AppendEntriesResponse, Appended]:
    """Append 1 to 1000 entries in one transaction, all or none, and return where
    they landed (`Appended(first_seq, next_seq)`).

    Each entry is a string (its content) or a mapping with `content`, `role` and
    `data` (a JSON object). With `expected_next_seq` the append happens only if
    the transcript's next seq is that one; otherwise FailedPrecondition with
    reason SEQ_MISMATCH and the actual next seq in `error.metadata["next_seq"]`.
    Raises FailedPrecondition (reason TRANSCRIPT_SEALED) for a sealed
    transcript, ResourceExhausted for an entry over the server's limit (store
    large content as an artifact), NotFound for an unknown id. With a
    `request_id` a retry returns the first result and appends nothing, so the
    client retries it after UNAVAILABLE; without one it is never retried.
    """
    request = transcripts_pb2.AppendEntriesRequest(
        id=transcript_id,
        entries=entry_messages(entries),
        expected_next_seq=_expected(expected_next_seq),
        request_id=request_id or "",
    )
    return namespaced_call(
        "transcripts", "AppendEntries", request, Appended.from_proto, namespace, bool(request_id)
    )


def append(
    transcript_id: str,
    content: str,
    *,
    role: str = "",
    data: Mapping[str, Any] | None = None,
    expected_next_seq: int | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
) -> Rpc[transcripts_pb2.AppendEntriesResponse, Appended]:
    """Append one entry (`content`, with an optional `role` and `data`) and
    return where it landed: `client.append("chat-1", "Hello", role="user").first_seq`
    is its seq. Otherwise as `append_entries`."""
    value: dict[str, Any] = {"content": content, "role": role}
    if data is not None:
        value["data"] = data
    return append_entries(
        transcript_id,
        [value],
        expected_next_seq=expected_next_seq,
        request_id=request_id,
        namespace=namespace,
    )


def seal_transcript(
    transcript_id: str, *, namespace: str | None = None
) -> Rpc[transcripts_pb2.Transcript, Transcript]:
    """Seal a transcript: appends fail from now on and followers end after the
    last entry. Sealing a sealed transcript returns it unchanged. Raises NotFound
    for an unknown id."""
    request = transcripts_pb2.SealTranscriptRequest(id=transcript_id)
    return namespaced_call(
        "transcripts", "SealTranscript", request, Transcript.from_proto, namespace, True
    )


def restore_transcript(
    transcript_id: str, *, namespace: str | None = None
) -> Rpc[transcripts_pb2.Transcript, Transcript]:
    """Bring an archived transcript's entries back to the hot tier; a hot one is
    returned unchanged (so it is retried). Raises NotFound for an unknown id."""
    request = transcripts_pb2.RestoreTranscriptRequest(id=transcript_id)
    return namespaced_call(
        "transcripts", "RestoreTranscript", request, Transcript.from_proto, namespace, True
    )


def delete_transcript(transcript_id: str, *, namespace: str | None = None) -> Rpc[Any, None]:
    """Delete a transcript and its entries; its followers end with NotFound.
    Raises NotFound for an unknown id. Never retried."""
    request = transcripts_pb2.DeleteTranscriptRequest(id=transcript_id)
    return namespaced_call(
        "transcripts", "DeleteTranscript", request, lambda _: None, namespace, False
    )


def search_transcripts(
    query: str,
    *,
    transcript_id: str | None = None,
    page_size: int = 0,
    namespace: str | None = None,
) -> PagedRpc[TranscriptHit]:
    """Iterate over the entries whose content holds every word of `query`, best
    first (of one transcript if `transcript_id` is given), as `TranscriptHit`s
    with a snippet."""
    request = transcripts_pb2.SearchTranscriptsRequest(
        query=query, id=transcript_id or "", page_size=page_size
    )
    return paged_call("SearchTranscripts", request, _hits, namespace, "transcripts")


def _listed(response: transcripts_pb2.ListTranscriptsResponse) -> list[Transcript]:
    return [Transcript.from_proto(message) for message in response.transcripts]


def _hits(response: transcripts_pb2.SearchTranscriptsResponse) -> list[TranscriptHit]:
    return [TranscriptHit.from_proto(hit) for hit in response.hits]
