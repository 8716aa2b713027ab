"""The half of an ImportNamespace both engines share: which archived rows clash with
stored ones, what the conflict policy makes of them, and the counts.

An engine supplies only its statements and how it runs them (`ImportEngine`):
PostgreSQL copies rows in and matches keys with arrays, SQLite inserts and matches
keys with `json_each`. So the order of writes and every conflict rule is written
once, here, and both engines are held to it by the same tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from strata_server.core.errors import AlreadyExists
from strata_server.core.job_transitions import Job
from strata_server.core.models import Actor, LoggedAudit
from strata_server.core.transfer_format import ConflictPolicy, ImportCounts, Kind, split_conflicts
from strata_server.core.transfer_rows import ArchivedEntry
from strata_server.storage.ports.transfer import ImportRequest
from strata_server.storage.transfer_params import SHAPES, Shape, Time

_UNFINISHED = frozenset({"ready", "leased"})


class ImportTable:
    """How one kind's rows are keyed and overwritten, in one engine's column order,
    placeholder and time encoding."""

    def __init__(
        self, shape: Shape, columns: Sequence[str], time: Time, placeholder: str, jsonb: bool
    ) -> None:
        self.table, self.keys, self.key = shape.table, shape.keys, shape.key
        self.columns = list(columns)
        self._values = shape.values
        self._time = time
        rest = [c for c in columns if c not in self.keys and c != "namespace"]
        self._update_columns = [*rest, "namespace", *self.keys]
        cast = {c: "::jsonb" for c in shape.json_columns} if jsonb else {}
        sets = ", ".join(f"{c} = {placeholder}{cast.get(c, '')}" for c in rest)
        match = " AND ".join(f"{k} = {placeholder}" for k in self.keys)
        self.update = f"UPDATE {self.table} SET {sets} WHERE namespace = {placeholder} AND {match}"

    def params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        """An archived row's values in column order, for inserting it."""
        values = self._values(namespace, row, self._time)
        return tuple(values[c] for c in self.columns)

    def update_params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        """An archived row's values in the order of `update`."""
        values = self._values(namespace, row, self._time)
        return tuple(values[c] for c in self._update_columns)


def import_tables(
    columns: Mapping[Kind, str], time: Time, placeholder: str, *, jsonb: bool
) -> dict[Kind, ImportTable]:
    """Every kind's ImportTable on one engine: queue settings, and each kind in
    `columns` (the column list the engine's own queries read it with) written with
    the namespace first."""

    def table(kind: Kind, names: Sequence[str]) -> ImportTable:
        return ImportTable(SHAPES[kind], names, time, placeholder, jsonb)

    def namespace_first(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",")]
        return ["namespace", *(name for name in names if name != "namespace")]

    return {
        Kind.QUEUES: table(Kind.QUEUES, ["namespace", "queue", "paused"]),
        **{kind: table(kind, namespace_first(text)) for kind, text in columns.items()},
    }


class ImportEngine(Protocol):
    """One engine's statements inside one import transaction."""

    async def stored(self, table: ImportTable, keys: list[Any]) -> set[Any]:
        """Which of these keys the namespace already holds."""
        ...

    async def insert(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        """New rows, as `table.params` gives them."""
        ...

    async def update(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        """Stored rows to overwrite, as `table.update_params` gives them."""
        ...

    async def drop_entries(self, transcript_ids: list[str]) -> None:
        """Entries of overwritten transcripts (the archive brings them again)."""
        ...

    async def unique_holders(self, jobs: list[Job]) -> set[tuple[str, str]]:
        """(queue, unique_key) of unfinished jobs with other ids than these that
        hold a unique_key one of these holds."""
        ...

    async def insert_entries(self, entries: list[ArchivedEntry]) -> None:
        """Transcript entries to add."""
        ...

    async def append_audit(self, entries: list[LoggedAudit]) -> int:
        """Append the audit entries the log does not hold yet; how many it appended."""
        ...

    async def finish(self, actor: Actor, written: list[str]) -> None:
        """Write the import's own audit entry naming the kinds it wrote."""
        ...


@dataclass(slots=True)
class ImportWriter:
    """One import's transaction: conflict checks and writes, batch by batch (a
    `transfer_sql.Writer`)."""

    engine: ImportEngine
    tables: Mapping[Kind, ImportTable]
    request: ImportRequest
    counts: ImportCounts = field(default_factory=ImportCounts)
    skipped_transcripts: set[str] = field(default_factory=set)
    """Transcripts the import skipped, whose archived entries it skips too."""

    async def rows(self, kind: Kind, rows: list[Any]) -> None:
        """Rows of every kind but entries and audit entries."""
        table = self.tables[kind]
        keys = [table.key(row) for row in rows]
        stored = await self.engine.stored(table, keys)
        if kind is Kind.JOBS:
            stored |= await self._unique_clashes(rows)
        fresh, taken = split_conflicts(
            kind, self.request.namespace, rows, keys, stored, self.request.policy, self.counts[kind]
        )
        if kind is Kind.TRANSCRIPTS and self.request.policy is ConflictPolicy.SKIP:
            self.skipped_transcripts.update(k for k in keys if k in stored)
        ns = self.request.namespace
        if fresh:
            await self.engine.insert(table, [table.params(ns, row) for row in fresh])
        if taken:
            await self.engine.update(table, [table.update_params(ns, r) for r in taken])
        if kind is Kind.TRANSCRIPTS and taken:  # their entries come again from the archive
            await self.engine.drop_entries([t.id for t in taken])

    async def _unique_clashes(self, jobs: list[Job]) -> set[Any]:
        unique = [j for j in jobs if j.unique_key is not None and j.state.value in _UNFINISHED]
        if not unique:
            return set()
        held = await self.engine.unique_holders(unique)
        if held and self.request.policy is ConflictPolicy.OVERWRITE:
            queue, key = next(iter(held))
            raise AlreadyExists(
                f"an unfinished job of queue {queue!r} already holds unique_key {key!r} in "
                f"namespace {self.request.namespace!r}; nothing was imported",
                metadata={"kind": "jobs", "unique_key": str(key)},
            )
        return {j.id for j in unique if (j.queue, j.unique_key) in held}

    async def entries(self, entries: list[ArchivedEntry]) -> None:
        """Transcript entries, less those of transcripts the import skipped."""
        count = self.counts[Kind.ENTRIES]
        kept = [e for e in entries if e.transcript_id not in self.skipped_transcripts]
        count.skipped += len(entries) - len(kept)
        count.imported += len(kept)
        await self.engine.insert_entries(kept)

    async def audit(self, entries: list[LoggedAudit]) -> None:
        """Audit entries, less those the log already holds."""
        added = await self.engine.append_audit(entries)
        count = self.counts[Kind.AUDIT]
        count.imported += added
        count.skipped += len(entries) - added

    async def finish(self) -> None:
        """The import's own audit entry."""
        written = [k for k, c in self.counts.kinds.items() if c.imported or c.overwritten]
        await self.engine.finish(self.request.actor, written)
