"""An import's rows: decompressed from the staged tar's JSON Lines members and
checked line by line, never read further than the import's limits.

A few hundred KB of gzip can hold gigabytes of one line, so no line is read past
the line limit, a batch holds at most BATCH rows and about BATCH_BYTES, and one
pass over the rows of a tar decompresses at most the rows limit
(`RowBudget`): the first excess is BAD_ARCHIVE, and memory stays bounded by the
limits, not by the tar. Everything here blocks; callers run it in a worker
thread.
"""

from __future__ import annotations

import asyncio
import gzip
import tarfile
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

from strata_server.core.artifact_rules import Artifact, StoredBlob
from strata_server.core.entry_offsets import EntryOffsets
from strata_server.core.transfer_format import KINDS, BadArchive, Kind, member_name
from strata_server.core.transfer_row_decoding import decode_lines
from strata_server.core.transfer_rows import RowBatch
from strata_server.services.transfer_tar import StagedTar

BATCH = 1000
"""Most rows handed to the database per batch."""
BATCH_BYTES = 4 << 20
"""A batch ends once its lines hold this many bytes (or BATCH rows)."""


def content_types(tar: StagedTar, budget: RowBudget) -> dict[str, str]:
    """sha256 -> the content type of the first artifact naming it: the one whose
    upload stored the blob, so the store picks the same encoding again."""
    types: dict[str, str] = {}
    for batch in _decoded(tar, Kind.ARTIFACTS, "_", budget):
        for artifact in batch:
            types.setdefault(artifact.sha256, artifact.content_type)
    return types


class RowBudget:
    """The decompressed bytes one pass over a tar's rows may still read: at most
    `rows_bytes` in all, no line longer than `line_bytes`."""

    def __init__(self, line_bytes: int, rows_bytes: int) -> None:
        self.line_bytes = line_bytes
        self.rows_bytes = rows_bytes
        self.left = rows_bytes

    def line(self, stream: gzip.GzipFile, name: str, number: int) -> bytes:
        """The next line of `stream` (b"" at its end), read no further than the limits."""
        line = stream.readline(self.line_bytes + 1)
        self.left -= len(line)
        if self.left < 0:
            raise BadArchive(
                f"the archive's rows decompress to more than {self.rows_bytes} bytes, "
                "the server's import limit (STRATA_MAX_IMPORT_ROWS_BYTES)",
                metadata={"limit": str(self.rows_bytes)},
            )
        if len(line) > self.line_bytes:
            raise BadArchive(
                f"{name}:{number}: the line is longer than {self.line_bytes} bytes, "
                "more than any row this server accepts",
                metadata={"member": name, "limit": str(self.line_bytes)},
            )
        return line


def _decoded(tar: StagedTar, kind: Kind, namespace: str, budget: RowBudget) -> Iterator[list[Any]]:
    """The rows of one member, decoded and checked, in batches of up to BATCH rows
    and about BATCH_BYTES (see the module docstring)."""
    name = member_name(kind)
    try:
        with gzip.GzipFile(fileobj=tar.read(name), mode="rb") as stream:
            first = 1
            while True:
                lines: list[bytes] = []
                size = 0
                while len(lines) < BATCH and size < BATCH_BYTES:
                    line = budget.line(stream, name, first + len(lines))
                    if not line:
                        break
                    lines.append(line)
                    size += len(line)
                if not lines:
                    return
                if not lines[-1].endswith(b"\n"):
                    raise BadArchive(f"{name}:{first + len(lines) - 1}: the last line is cut")
                yield decode_lines(kind, lines, namespace, name, first)
                first += len(lines)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        raise BadArchive(f"{name} is not a readable gzip stream ({error})") from None


class ImportRows:
    """The tar's rows as batches for the database port, and how many were read."""

    def __init__(
        self, tar: StagedTar, namespace: str, stored: dict[str, StoredBlob], budget: RowBudget
    ):
        self.tar = tar
        self.namespace = namespace
        self.stored = stored
        self.budget = budget
        self.total = sum(m.rows for m in tar.manifest.members)
        self.done = 0
        self.collections: set[str] = set()
        """The collections of the records read, whose watches the import wakes."""
        self.queues: set[str] = set()
        """The queues of the jobs and queue settings read, whose consumers it wakes."""

    def _batches(self) -> Iterator[RowBatch]:
        transcripts: dict[str, tuple[int, int]] = {}
        for kind in KINDS:
            name = member_name(kind)
            offsets = EntryOffsets(transcripts) if kind is Kind.ENTRIES else None
            line = 1
            for rows in _decoded(self.tar, kind, self.namespace, self.budget):
                if kind is Kind.TRANSCRIPTS:
                    transcripts.update((t.id, (t.next_seq, t.size_bytes)) for t in rows)
                elif offsets is not None:
                    rows = [offsets.place(row, name, n) for n, row in enumerate(rows, line)]
                elif kind is Kind.ARTIFACTS:
                    rows = [self._restored(row) for row in rows]
                elif kind is Kind.RECORDS:
                    self.collections.update(row.collection for row in rows)
                elif kind in (Kind.JOBS, Kind.QUEUES):
                    self.queues.update(row.queue for row in rows)
                line += len(rows)
                yield RowBatch(kind, rows)
            if offsets is not None:
                offsets.finish(name)

    def _restored(self, artifact: Artifact) -> Artifact:
        blob = self.stored[artifact.sha256]
        return replace(artifact, stored_size=blob.stored_size, compression=blob.compression)

    async def batches(self) -> AsyncIterator[RowBatch]:
        """The batches, each read and decoded in a worker thread."""
        source = self._batches()
        while batch := await asyncio.to_thread(next, source, None):
            yield batch
            self.done += len(batch.rows)
