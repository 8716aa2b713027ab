"""The transcripts port: append-only, gapless logs read in byte-bounded batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strata_server.core.models import Actor, Page
from strata_server.core.transcript_rules import (
    Appended,
    AppendEntries,
    EntryBatch,
    NewTranscript,
    Transcript,
    TranscriptHit,
    TranscriptListQuery,
    TranscriptSearch,
)
from strata_server.storage.ports.write_context import WriteContext


class TranscriptStore(Protocol):
    """Append-only transcripts. Entries are numbered 1, 2, 3, ... with no gap, in
    commit order; appends to one transcript are serialized (never all appends), and
    every mutation appends its audit entry (entity "transcript") in the same
    transaction. Unknown ids are NotFound."""

    async def create_transcript(
        self, namespace: str, new: NewTranscript, context: WriteContext
    ) -> Transcript:
        """Create an empty transcript; AlreadyExists when the id is taken."""
        ...

    async def get_transcript(self, namespace: str, id: str) -> Transcript:
        """One transcript's description."""
        ...

    async def transcript_states(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """The next seq and whether it is sealed of each transcript named by a
        (namespace, id) key, in one query however many: the followed transcripts'
        shared re-check. A transcript that does not exist is left out."""
        ...

    async def list_transcripts(
        self, namespace: str, query: TranscriptListQuery
    ) -> Page[Transcript]:
        """Transcripts newest first ((create_time, id) descending), optionally of one
        owner and/or of one parent record, after the key `query.after`; `last_key` is
        (create_time, id)."""
        ...

    async def append_entries(
        self, namespace: str, append: AppendEntries, context: WriteContext
    ) -> Appended:
        """Append in one transaction, all or none: core.transcript_rules.check_append
        decides (sealed, expected_next_seq), entries get the next seqs in order. The
        context's one notice goes out with the append's commit."""
        ...

    async def read_batch(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        """Committed entries from `from_seq` on, consecutive, as many as fit in
        `max_bytes` (at least one when entry `from_seq` exists; core.transcript_rules.
        fit_batch), in their wire form. None when there is no entry `from_seq` (yet);
        existence of the transcript is not checked. One keyset query: memory is bounded
        by `max_bytes` plus one entry, whatever the transcript's length."""
        ...

    async def seal_transcript(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Seal (audit action `seal`); a sealed transcript is returned unchanged."""
        ...

    async def delete_transcript(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Delete the transcript and its entries, with one audit entry."""
        ...

    async def search_transcripts(
        self, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        """Entries whose content holds every word of the query, best first, paged by
        offset; `last_key` is non-None when a further page may exist."""
        ...
