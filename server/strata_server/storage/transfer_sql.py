"""What an export reads of each kind, in SQL both dialects share: the columns, the
rows of a namespace, the extra condition for one owner, and the order.

The adapters differ only in their column lists and their placeholder style, so
each builds its table from this one by passing those (`export_table`), and in how
they read a snapshot, so each passes that to the one walk over it (`export_rows`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from strata_server.core.models import LoggedAudit
from strata_server.core.transfer_format import KINDS, Kind
from strata_server.core.transfer_rows import ArchivedEntry, RowBatch
from strata_server.core.values import frozen
from strata_server.storage.audit_sql import COLUMNS as AUDIT_COLUMNS


@frozen
class ExportQuery:
    """How one kind is read for an export."""

    columns: str
    where: str
    """FROM and WHERE for the whole namespace."""
    owned: str | None
    """The extra WHERE for one owner; None: the kind has no owner and is left out."""
    order: str

    def select(self, owner: str | None) -> str | None:
        """FROM and WHERE for the namespace, or for one owner's rows of it; None
        when an owner's export leaves this kind out."""
        if owner is None:
            return self.where
        return None if self.owned is None else f"{self.where} AND {self.owned}"


def export_table(
    columns: Mapping[Kind, str], param: Callable[[str], str]
) -> dict[Kind, ExportQuery]:
    """Every kind's ExportQuery, with the dialect's column lists for records, jobs,
    transcripts and artifacts, and `param(name)` for a named placeholder."""
    ns, owner = param("ns"), param("owner")
    transcripts = f"SELECT id FROM transcripts WHERE namespace = {ns} AND owner = {owner}"
    artifacts = f"SELECT id FROM artifacts WHERE namespace = {ns} AND owner = {owner}"
    records = (
        f"SELECT collection || '/' || id FROM records WHERE namespace = {ns} AND owner = {owner}"
    )
    return {
        Kind.QUEUES: ExportQuery(
            "queue, paused", f"queue_settings WHERE namespace = {ns}", None, "queue"
        ),
        Kind.RECORDS: ExportQuery(
            columns[Kind.RECORDS],
            f"records WHERE namespace = {ns} "
            f"AND (expire_time IS NULL OR expire_time > {param('now')})",
            f"owner = {owner}",
            "collection, id",
        ),
        Kind.JOBS: ExportQuery(columns[Kind.JOBS], f"jobs WHERE namespace = {ns}", None, "id"),
        Kind.TRANSCRIPTS: ExportQuery(
            columns[Kind.TRANSCRIPTS],
            f"transcripts WHERE namespace = {ns}",
            f"owner = {owner}",
            "id",
        ),
        Kind.ENTRIES: ExportQuery(
            "transcript_id, seq, start_offset, size, role, content, data, create_time, wire_tail",
            f"transcript_entries WHERE namespace = {ns}",
            f"transcript_id IN ({transcripts})",
            "transcript_id, seq",
        ),
        Kind.ARTIFACTS: ExportQuery(
            columns[Kind.ARTIFACTS],
            f"artifacts WHERE namespace = {ns}",
            f"owner = {owner}",
            "id",
        ),
        Kind.AUDIT: ExportQuery(
            AUDIT_COLUMNS,
            f"audit_log WHERE namespace = {ns}",
            f"((entity = 'transcript' AND entity_id IN ({transcripts})) "
            f"OR (entity = 'artifact' AND entity_id IN ({artifacts})) "
            f"OR (entity = 'record' AND entity_id IN ({records})))",
            "seq",
        ),
    }


Row = TypeVar("Row", bound=Sequence[Any])


async def export_rows(
    exports: Mapping[Kind, ExportQuery],
    owner: str | None,
    fetch: Callable[[str], Awaitable[Sequence[Row]]],
    batches: Callable[[Kind, str], AsyncIterator[Sequence[Row]]],
    blob_totals: str,
    convert: Callable[[Kind], Callable[[Row], Any]],
) -> AsyncIterator[dict[str, int] | RowBatch]:
    """An export read from one snapshot: first the counts of every kind and of the
    blobs (`blob_totals`), then every kind's rows batch by batch. `fetch(sql)` and
    `batches(kind, sql)` run a statement in the snapshot with the export's named
    parameters; `convert(kind)` turns one of its rows into the archived value."""
    counts: dict[str, int] = {}
    for kind in KINDS:
        where = exports[kind].select(owner)
        counts[kind] = 0 if where is None else (await fetch(f"SELECT count(*) FROM {where}"))[0][0]
    [(blobs, blob_bytes)] = await fetch(blob_totals)
    counts["blobs"], counts["blob_bytes"] = blobs, blob_bytes
    yield counts
    for kind in KINDS:
        query = exports[kind]
        where = query.select(owner)
        if where is None:
            continue
        from_row = convert(kind)
        sql = f"SELECT {query.columns} FROM {where} ORDER BY {query.order}"
        async for rows in batches(kind, sql):
            yield RowBatch(kind, [from_row(row) for row in rows])


class Writer(Protocol):
    """One import's transaction on one engine: conflict checks and writes."""

    async def rows(self, kind: Kind, rows: list[Any]) -> None:
        """Rows of every kind but entries and audit entries."""
        ...

    async def entries(self, entries: list[ArchivedEntry]) -> None:
        """Transcript entries (after their transcripts)."""
        ...

    async def audit(self, entries: list[LoggedAudit]) -> None:
        """Audit entries (last)."""
        ...

    async def finish(self) -> None:
        """Write the import's own audit entry."""
        ...


async def write_batches(writer: Writer, batches: AsyncIterator[RowBatch]) -> None:
    """Hand every batch to the writer's method for its kind, then finish."""
    async for batch in batches:
        if batch.kind is Kind.ENTRIES:
            await writer.entries(batch.rows)
        elif batch.kind is Kind.AUDIT:
            await writer.audit(batch.rows)
        else:
            await writer.rows(batch.kind, batch.rows)
    await writer.finish()
