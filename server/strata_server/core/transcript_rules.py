"""Transcripts: append-only logs of entries, and the rules both adapters share.

A transcript's entries are numbered 1, 2, 3, ... with no gap (`seq`), in the order
their appends committed. Each entry also has a byte `size` (its role, content and
data JSON, plus ENTRY_OVERHEAD) and a `start_offset`: the sum of the sizes of every
entry before it. Offsets grow strictly with seq, so "the entries starting within
the next N bytes" is one index range scan: that is how a reader gets batches bounded
by bytes, never by a row count that a few large entries could blow up.

Nothing here touches gRPC or SQL: the API validates requests into these types, the
adapters persist them, and `plan_append` / `fit_batch` / `start_seq` decide what
both sides must agree on.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any, Final, TypeVar

from strata_server.core.errors import FailedPrecondition, InvalidArgument, OutOfRange, TooLarge
from strata_server.core.jsontypes import JSON, fields_from_json, fields_to_json, serialize
from strata_server.core.parent_refs import ParentRef
from strata_server.core.validation import COLLECTION_RE
from strata_server.core.values import frozen

ENTITY = "transcript"
"""The audit log's entity kind for transcripts."""

ENTRY_OVERHEAD = 32
"""Bytes counted per entry on top of its role, content and data: about what its
seq, timestamp and framing cost on the wire, so a batch's count is close to its
message size. Keeps every entry's size positive, so offsets grow strictly."""

DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024
MAX_APPEND_ENTRIES = 1000
DEFAULT_BATCH_BYTES = 64 * 1024
MAX_BATCH_BYTES = 1024 * 1024
"""Largest batch a reader may ask for: well below gRPC's default 4 MiB receive limit
even where protobuf's encoding of data runs larger than its JSON."""
MAX_ROLE = 64
ROLE_RE = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
MAX_OWNER = 256
MAX_TITLE = 1024
MAX_LABELS = 64
MAX_LABEL_VALUE = 256


@frozen
class Transcript:
    """A transcript's description; its entries are 1..next_seq-1."""

    namespace: str
    id: str
    owner: str
    title: str
    labels: Mapping[str, str]
    next_seq: int
    size_bytes: int
    create_time: datetime
    update_time: datetime
    seal_time: datetime | None = None
    parent: ParentRef | None = None
    archive_time: datetime | None = None
    """When its entries moved to the archive tier (None: they are hot)."""

    @property
    def sealed(self) -> bool:
        """Whether appends are refused from now on."""
        return self.seal_time is not None

    @property
    def tier(self) -> Tier:
        """Where its entries are."""
        return Tier.HOT if self.archive_time is None else Tier.ARCHIVED


class Tier(enum.StrEnum):
    """Where a transcript's entries are kept (docs/transcripts.md, "Tiers")."""

    HOT = "hot"
    """Rows of the database, one per entry."""
    ARCHIVED = "archived"
    """Compressed segment objects in the blob store; only the transcript's row and
    its entries' search rows stay in the database."""


@frozen
class NewTranscript:
    """A validated CreateTranscript."""

    id: str
    owner: str = ""
    title: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    parent: ParentRef | None = None


@frozen
class NewEntry:
    """A validated entry to append; `data_json` is `data` serialized once, `size`
    what it counts for in offsets and batches."""

    role: str
    content: str
    data: JSON | None
    data_json: str | None
    size: int


Entry = tuple[int, str, str, JSON | None, datetime, int]
"""A stored entry as reads return it: `(seq, role, content, data, create_time, size)`.

A plain tuple, in the order the adapters' batch queries select the columns, so a
read hands the driver's rows over as they come: the NamedTuple built per row before
(`Entry._make`) cost a measurable share of a ReadTranscript's work per entry
(bench/RESULTS.md, "measured in passing").
Readers unpack it (`for seq, role, content, data, create_time, size in entries`)."""

SEQ: Final = 0
"""Position of `seq` in an Entry."""
SIZE: Final = 5
"""Position of `size` in an Entry."""

Row = TypeVar("Row", bound=tuple[Any, ...])
"""An Entry, perhaps with more columns after it."""


@frozen
class EntryBatch:
    """Consecutive entries as ReadTranscript sends them: `wire` is their stored forms
    one after another (storage/entry_wire.py), `next_seq` the seq after the last."""

    wire: bytes
    next_seq: int


@frozen
class AppendEntries:
    """Append `entries` to transcript `id`; with `expected_next_seq`, only if that is
    the transcript's next seq. Also one write of a Commit."""

    id: str
    entries: Sequence[NewEntry]
    expected_next_seq: int | None = None


@frozen
class Appended:
    """Where an append landed: entries first_seq..next_seq-1."""

    id: str
    first_seq: int
    next_seq: int


@frozen
class TranscriptListQuery:
    """A checked ListTranscripts page request, handed unchanged from the RPC to the
    adapters so the filters are named once rather than at every layer. Values left
    None do not filter; `after` is the (create_time, id) of the previous page's last."""

    limit: int
    owner: str | None = None
    after: tuple[Any, ...] | None = None
    parent: ParentRef | None = None


@frozen
class TranscriptSearch:
    """A validated SearchTranscripts; `id` None searches every transcript."""

    text: str
    limit: int
    offset: int = 0
    id: str | None = None


@frozen
class TranscriptHit:
    """An entry matching a search, with a snippet and its relevance (higher is better)."""

    transcript_id: str
    seq: int
    role: str
    snippet: str
    score: float
    create_time: datetime


# --- Validation ----------------------------------------------------------------------


def _printable(value: str, limit: int, field: str) -> str:
    if len(value) > limit or not value.isprintable():
        raise InvalidArgument.field(field, f"must be at most {limit} printable characters")
    return value


def new_transcript(
    id: str,
    owner: str,
    title: str,
    labels: Mapping[str, str],
    *,
    parent: ParentRef | None = None,
) -> NewTranscript:
    """Check a create's owner, title and labels (the id is checked by the caller)."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgument.field("labels", f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not COLLECTION_RE.fullmatch(key):
            raise InvalidArgument.field(
                "labels", "keys must be a letter then up to 63 letters, digits, '_' or '-'"
            )
        _printable(value, MAX_LABEL_VALUE, f"labels[{key}]")
    return NewTranscript(
        id=id,
        owner=_printable(owner, MAX_OWNER, "owner"),
        title=_printable(title, MAX_TITLE, "title"),
        labels=dict(sorted(labels.items())),
        parent=parent,
    )


def new_entry(
    role: str, content: str, data: JSON | None, max_bytes: int, prefix: str = ""
) -> NewEntry:
    """Check one entry to append and measure it. TooLarge (pointing to artifacts) when
    its role, content and data JSON together exceed `max_bytes`."""
    if not ROLE_RE.fullmatch(role):
        raise InvalidArgument.field(
            f"{prefix}role", f"must be at most {MAX_ROLE} of letters, digits and '_.:-'"
        )
    if "\x00" in content:
        raise InvalidArgument.field(f"{prefix}content", "must not contain the NUL character")
    data_json = serialize(data, max_bytes, f"{prefix}data", "entry data") if data else None
    size = len(role) + len(content.encode()) + (len(data_json.encode()) if data_json else 0)
    if size > max_bytes:
        raise TooLarge(
            f"the entry is {size} bytes, over the {max_bytes}-byte limit of a transcript entry; "
            "store large content as an artifact (ArtifactService) and append a reference to it",
            metadata={"size": str(size), "limit": str(max_bytes)},
        )
    kept = data if data_json else None
    return NewEntry(role, content, kept, data_json, size + ENTRY_OVERHEAD)


def batch_bytes(requested: int) -> int:
    """A ReadTranscript max_batch_bytes: 0 means the default, above the maximum is
    clamped (as page sizes are), negative is an error."""
    if requested < 0:
        raise InvalidArgument.field("max_batch_bytes", "must not be negative")
    if requested == 0:
        return DEFAULT_BATCH_BYTES
    return min(requested, MAX_BATCH_BYTES)


# --- Rules ---------------------------------------------------------------------------


def seq_mismatch(id: str, expected: int, actual: int) -> FailedPrecondition:
    """The error of an append whose expected_next_seq is stale."""
    return FailedPrecondition(
        f"transcript {id} is at next_seq {actual}, not {expected}: someone appended since",
        reason="SEQ_MISMATCH",
        metadata={"next_seq": str(actual), "expected_next_seq": str(expected)},
    )


def sealed_error(id: str) -> FailedPrecondition:
    """The error of an append to a sealed transcript."""
    return FailedPrecondition(
        f"transcript {id} is sealed and takes no more entries",
        reason="TRANSCRIPT_SEALED",
    )


def check_append(id: str, next_seq: int, sealed: bool, expected_next_seq: int | None) -> None:
    """Refuse an append to a sealed transcript, or one whose expected_next_seq is not
    the transcript's next seq (sealed is checked first: retrying cannot help it)."""
    if sealed:
        raise sealed_error(id)
    if expected_next_seq is not None and expected_next_seq != next_seq:
        raise seq_mismatch(id, expected_next_seq, next_seq)


def relative_offsets(entries: Sequence[NewEntry]) -> list[int]:
    """Each entry's start offset relative to the first entry's."""
    offsets: list[int] = []
    total = 0
    for entry in entries:
        offsets.append(total)
        total += entry.size
    return offsets


def total_size(entries: Sequence[NewEntry]) -> int:
    """The bytes an append adds to the transcript's size."""
    return sum(entry.size for entry in entries)


def start_seq(from_seq: int, next_seq: int) -> int:
    """The first seq a read delivers: from_seq itself, 1 for 0, and for a negative
    value that many back from the end (never before 1)."""
    if from_seq > 0:
        return from_seq
    if from_seq == 0:
        return 1
    return max(1, next_seq + from_seq)


def past_end(id: str, from_seq: int, next_seq: int) -> OutOfRange:
    """The error of a read from beyond the end that will not wait for it."""
    return OutOfRange(
        f"transcript {id} ends before seq {from_seq} (its next seq is {next_seq})",
        reason="PAST_END",
        metadata={"next_seq": str(next_seq)},
    )


def fit_batch(entries: Sequence[Row], max_bytes: int) -> list[Row]:
    """The longest prefix of `entries` (consecutive from the first) whose sizes add up
    to at most `max_bytes`; the first entry alone when it is larger than that.

    Sums and checks with C-level iteration (accumulate, bisect, list equality): the
    per-entry Python loop it replaced cost time on every entry of every read
    (bench/RESULTS.md, "measured in passing")."""
    if not entries:
        return []
    ends = list(accumulate(map(itemgetter(SIZE), entries)))
    count = max(1, bisect_right(ends, max_bytes))
    first = entries[0][SEQ]
    seqs = list(map(itemgetter(SEQ), entries[:count]))
    if seqs != list(range(first, first + count)):
        # A gap can only be a storage bug: never skip over it, stop before it.
        count = next(i for i, seq in enumerate(seqs) if seq != first + i)
    return list(entries[:count])


# --- JSON forms (idempotent results) -------------------------------------------------


def transcript_to_json(transcript: Transcript) -> JSON:
    """A transcript as JSON, times as ISO 8601, to store an idempotent create's result."""
    return fields_to_json(transcript)


def transcript_from_json(value: JSON) -> Transcript:
    """Inverse of transcript_to_json."""
    return fields_from_json(Transcript, value)


def appended_to_json(appended: Appended) -> JSON:
    """An append's result as JSON (for request_log)."""
    return {"id": appended.id, "first_seq": appended.first_seq, "next_seq": appended.next_seq}


def appended_from_json(value: Any) -> Appended:
    """Inverse of appended_to_json."""
    return Appended(value["id"], int(value["first_seq"]), int(value["next_seq"]))
