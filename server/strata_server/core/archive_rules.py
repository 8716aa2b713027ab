"""The archive tier of transcripts: what an archived transcript's segments are, and
how a read of them fits the batches a read of the hot rows fits.

A sealed transcript's entries can move from rows of the database to segment
objects in the blob store (services/transcript_archive.py does it, and brings them
back). The segments of a transcript cover seqs 1..next_seq-1 in order with no gap;
each names its blob by SHA-256, as artifacts do, so the orphan-blob sweep keeps
every blob a segment names and takes the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from strata_server.core.artifact_rules import BlobRef
from strata_server.core.errors import FailedPrecondition
from strata_server.core.transcript_rules import Transcript
from strata_server.core.values import frozen

ACTION_ARCHIVE = "archive"
"""The audit action of archiving a transcript."""
ACTION_RESTORE = "restore"
"""The audit action of bringing an archived transcript back hot."""


@frozen
class Segment:
    """Entries first_seq..next_seq-1 of an archived transcript, the first starting at
    byte offset `start_offset`, stored as the blob `blob`."""

    first_seq: int
    next_seq: int
    start_offset: int
    blob: BlobRef


@frozen
class HotEntry:
    """What archiving takes from an entry's row: its place, its size as batches
    count it, its data as the row stores it (JSON), and its wire form."""

    seq: int
    start_offset: int
    size: int
    data_json: str | None
    wire: bytes


@frozen
class RestoredEntry:
    """An entry's row as a restore writes it back."""

    seq: int
    start_offset: int
    size: int
    role: str
    content: str
    data_json: str | None
    create_time: datetime
    wire: bytes


def not_sealed(id: str) -> FailedPrecondition:
    """The error of archiving a transcript that is still open."""
    return FailedPrecondition(
        f"transcript {id} is open: only a sealed transcript can be archived",
        reason="TRANSCRIPT_OPEN",
    )


def changed_meanwhile(id: str) -> FailedPrecondition:
    """The error of an archive whose transcript changed while its segments were
    written (deleted and created again, restored, archived by someone else)."""
    return FailedPrecondition(
        f"transcript {id} changed while it was being archived; nothing was archived",
        reason="TRANSCRIPT_CHANGED",
    )


def check_still_archivable(transcript: Transcript, segments: Sequence[Segment]) -> None:
    """Before the transaction that drops the hot rows: the transcript (as read, locked,
    in that transaction) is still sealed and hot, and the segments written for it hold
    seqs 1..next_seq-1 in order with no gap (else it changed meanwhile:
    changed_meanwhile)."""
    expected = 1
    for segment in segments:
        if segment.first_seq != expected:
            raise changed_meanwhile(transcript.id)
        expected = segment.next_seq
    archived = transcript.archive_time is not None
    if not transcript.sealed or archived or expected != transcript.next_seq:
        raise changed_meanwhile(transcript.id)


def segment_rows(namespace: str, id: str, segments: Sequence[Segment]) -> list[tuple[object, ...]]:
    """Each segment as both engines' INSERT_SEGMENT takes it (namespace, transcript_id,
    first_seq, next_seq, start_offset, sha256, compression, size, stored_size)."""
    return [
        (
            namespace,
            id,
            segment.first_seq,
            segment.next_seq,
            segment.start_offset,
            segment.blob.sha256,
            segment.blob.compression.value,
            segment.blob.size,
            segment.blob.stored_size,
        )
        for segment in segments
    ]


def segment_index(segments: list[Segment], seq: int) -> int | None:
    """The position in `segments` (ordered by first_seq) of the one holding `seq`."""
    low, high = 0, len(segments)
    while low < high:
        middle = (low + high) // 2
        if segments[middle].next_seq <= seq:
            low = middle + 1
        else:
            high = middle
    if low < len(segments) and segments[low].first_seq <= seq:
        return low
    return None
