"""The transcript archive port: the database's side of the archive tier (the
segments' bytes are in the BlobStore)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from strata_server.core.archive_rules import HotEntry, RestoredEntry, Segment
from strata_server.core.models import Actor
from strata_server.core.transcript_rules import Transcript


class TranscriptArchive(Protocol):
    """Moves a transcript's entries between its hot rows and its segment list, each
    move one transaction with its audit entry (entity "transcript"), so a crash
    leaves either the hot rows or a complete segment list, never neither. The
    transcript's row and its entries' search rows stay either way. Unknown ids are
    NotFound."""

    async def count_archivable(self, namespace: str, sealed_before: datetime) -> int:
        """Hot transcripts of the namespace sealed before the time (an
        archive_transcripts policy's step)."""
        ...

    async def archivable(self, namespace: str, sealed_before: datetime, limit: int) -> list[str]:
        """Up to `limit` of those, by seal time."""
        ...

    async def archived_transcripts(
        self, namespace: str, owner: str | None
    ) -> dict[str, tuple[datetime, int]]:
        """The archived transcripts of the namespace (of one owner, when given): each
        id's archive_time and next_seq (what an export checks did not change)."""
        ...

    async def segment_blobs(self) -> dict[str, list[tuple[str, str]]]:
        """Every blob a segment names, in any namespace, with the (namespace,
        transcript id) of each segment naming it (the integrity check holds the
        artifacts' names in memory too)."""
        ...

    async def hot_entries(
        self, namespace: str, id: str, after_seq: int, limit: int
    ) -> Sequence[HotEntry]:
        """Up to `limit` hot entries after seq `after_seq`, in seq order (the wire
        form worked out for entries stored without it)."""
        ...

    async def archive(
        self, namespace: str, id: str, segments: Sequence[Segment], *, actor: Actor
    ) -> Transcript:
        """In one transaction: record `segments` (whose blobs are already stored),
        keep the entries' search rows, delete the hot rows, mark the transcript
        archived (audit action `archive`). FailedPrecondition TRANSCRIPT_CHANGED when
        the transcript is no longer sealed, hot and ending where the segments end."""
        ...

    async def segments(self, namespace: str, id: str) -> list[Segment]:
        """An archived transcript's segments by first_seq (none when it is hot)."""
        ...

    async def restore(
        self,
        namespace: str,
        id: str,
        entries: AsyncIterator[Sequence[RestoredEntry]],
        *,
        actor: Actor,
    ) -> Transcript:
        """In one transaction: write back every entry `entries` yields (all of them,
        in seq order), drop the segment list and the archived search rows, mark the
        transcript hot (audit action `restore`). A hot transcript is returned
        unchanged without reading `entries`."""
        ...
