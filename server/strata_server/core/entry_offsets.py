"""Where each imported transcript entry starts in its transcript's bytes, checked:
an archive's entries must be exactly the ones its transcripts say they hold.

Kept apart from decoding because it spans rows (a transcript's entries, in order),
where decoding reads one line at a time.
"""

from __future__ import annotations

from collections.abc import Mapping

from strata_server.core.transfer_format import BadArchive
from strata_server.core.transfer_rows import ArchivedEntry


class EntryOffsets:
    """Checks that each transcript's entries run 1..next_seq-1 with no gap, gives each
    its start_offset (the sizes before it), and that they add up to the transcript's
    size_bytes: a reader's byte-ranged batches depend on both."""

    def __init__(self, transcripts: Mapping[str, tuple[int, int]]) -> None:
        self._expected = dict(transcripts)  # id -> (next_seq, size_bytes)
        self._current: str | None = None
        self._seq = 0
        self._offset = 0
        self._done: set[str] = set()

    def place(self, entry: ArchivedEntry, member: str, line: int) -> ArchivedEntry:
        """The entry (line `line` of `member`) with its start_offset; BadArchive if out
        of order or of a transcript the archive does not hold."""
        if entry.transcript_id != self._current:
            self._close(f"{member}:{line}")
            if entry.transcript_id not in self._expected or entry.transcript_id in self._done:
                raise BadArchive(
                    f"{member}:{line}: an entry of transcript {entry.transcript_id!r}, which "
                    "the archive does not hold (or whose entries are not consecutive)"
                )
            self._current, self._seq, self._offset = entry.transcript_id, 0, 0
        if entry.seq != self._seq + 1:
            raise BadArchive(
                f"{member}:{line}: transcript {entry.transcript_id!r} jumps from seq "
                f"{self._seq} to {entry.seq}"
            )
        placed = ArchivedEntry(
            entry.transcript_id,
            entry.seq,
            self._offset,
            entry.size,
            entry.role,
            entry.content,
            entry.data,
            entry.create_time,
        )
        self._seq = entry.seq
        self._offset += entry.size
        return placed

    def finish(self, where: str) -> None:
        """After the last entry: every transcript got exactly its entries."""
        self._close(where)
        for id in self._expected.keys() - self._done:
            next_seq, _ = self._expected[id]
            if next_seq != 1:
                raise BadArchive(f"{where}: transcript {id!r} has no entries, not {next_seq - 1}")

    def _close(self, where: str) -> None:
        if self._current is None:
            return
        next_seq, size_bytes = self._expected[self._current]
        if (self._seq + 1, self._offset) != (next_seq, size_bytes):
            raise BadArchive(
                f"{where}: transcript {self._current!r} has entries 1..{self._seq} of "
                f"{self._offset} bytes, but says next_seq {next_seq} and {size_bytes} bytes"
            )
        self._done.add(self._current)
        self._current = None
